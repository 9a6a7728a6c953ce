// GEMM (m > 8) for Q8 and Q4 weights on int8 activations, on the tensor cores: the numerics of
// ref::matmul_int8_activations, as the GEMV (m <= 8, quant_gemv_int8.cuh) and the CPU's integer
// kernels compute them, so a quantized model gives the same arithmetic at every batch size.
//  1. x is quantized per 32 values (quantize_activation_blocks).
//  2. Each 32-value block of a weight row and a token is one exact int32 dot product
//     (mma.m16n8k32, s8 x s8; 4-bit codes become c - zero in registers, never in memory), which
//     becomes fp32 through the block's activation scale and the row's 4-bit group scale and is
//     summed in fp32; Q8's row scale and the bias come last.
// Weights stream through a cp.async ring in shared memory (the first stages requested before the
// producer's wait: they do not depend on x), so the matrix is read once per 64 tokens instead of
// being dequantized to bf16 on every call.
#pragma once

#include <cuda_runtime.h>

#include "core/tensor.h"

namespace brisk::cuda {

// True for the dtypes quant_gemm_int8 runs (Q8, Q4).
bool has_int8_gemm(DType dtype);

// y[m, n] = x[m, k] w[n, k]^T (+ bias) for any m >= 1 (meant for m > 8), w a repacked Q8 / Q4
// matrix (quant_layout.h). scratch: int8_activation_bytes(m, w) bytes of device memory, 256-byte
// aligned.
void quant_gemm_int8(const float* x, int m, int k, const Tensor& w, const float* bias, float* y, void* scratch,
                     cudaStream_t stream);

}  // namespace brisk::cuda
