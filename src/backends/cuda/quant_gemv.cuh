// Matmuls with quantized weights (block dtypes, repacked at upload: quant_layout.h).
//  - m <= 8: Q8, Q4, NF4, LOG4 run on int8 activations (quant_gemv_int8.cuh). F8 and Q8A8 run
//    quant_gemv here, the persistent-grid GEMV of matmul.cu with codes widened in registers
//    (int8 / e4m3), fp32 products and sums, x kept in fp32.
//  - larger m: MatmulEngine dequantizes the matrix to bf16 (dequantize_to_bf16) and runs the
//    cuBLASLt bf16 GEMM on it.
// w8a8 (Q8A8) runs as Q8 on activations first snapped to their per-token int8 grid
// (quantize_rows_per_token), which is what the CPU's int8 kernels compute exactly.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/tensor.h"

namespace brisk::cuda {

// y[m, n] = x[m, k] w[n, k]^T (+ bias) for m in 1..8; w a repacked F8, Q8A8 (or Q8) matrix.
void quant_gemv(const float* x, int m, int k, const Tensor& w, const float* bias, float* y, int sm_count,
                cudaStream_t stream);

// w (repacked, [n, k]) -> row-major bf16 [n, k]: (level - zero) * scale in fp32, rounded to
// nearest even -- bit for bit what the host's dequantize_row gives, rounded to bf16.
void dequantize_to_bf16(const Tensor& w, uint16_t* out, cudaStream_t stream);

// out[i, :] = rint(x[i, :] * 127 / absmax_i) * (absmax_i / 127): each row on its per-token int8
// grid, the values quantize_activation_row_u8 (core/quant_blocks.h) stands for.
void quantize_rows_per_token(const float* x, int64_t m, int64_t k, float* out, cudaStream_t stream);

}  // namespace brisk::cuda
