// Weight-only quantized GEMM (m > 8) on bf16 activations: the mixed-input tensor-core kernel
// (Marlin's idea) for Q8, Q4, NF4 and LOG4 weights.
//  1. x is rounded to bf16 once per call, each 16 values stored in the order the weight codes
//     unpack to (evens, then odds: see slot_value), rows padded with zeros to whole blocks.
//  2. Weight codes stream from the uploaded layout (quant_layout.h) through a 4-stage cp.async
//     ring; each warp widens its 32 rows to bf16 in registers -- exact small integers c - zero
//     for Q8 / Q4, the codebook's levels rounded to bf16 for NF4 / LOG4 -- and runs
//     mma.m16n8k16 (bf16 x bf16, fp32 sums). A 4-bit group's products are summed apart and
//     scaled once per group (128 values) in fp32; Q8's row scale and the bias come last.
//     On Hopper, from 64 tokens, warpgroups of 4 warps run wgmma instead (A, the widened weights,
//     from registers; B, x, from the ring), 64 tokens per block.
//  3. Shapes with fewer blocks than the GPU has SMs split k across blocks; the partial sums go
//     to scratch and one small kernel adds them in a fixed order (results are deterministic).
// Numerics: y = sum over k of bf16(x) * w in fp32, with w exact except NF4's levels (bf16
// rounding, at most 2^-9 relative per level). The weights are never dequantized to memory.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "core/tensor.h"

namespace brisk::cuda {

// Which kernel runs: the warp kernel (mma.m16n8k16, any GPU) or, on Hopper, the warpgroup kernel
// (wgmma, 64 tokens per block). Auto picks by m; tests and benchmarks pin one (process-wide).
enum class MixedGemmPath { Auto, Warp, Warpgroup };
void pin_mixed_gemm_path(MixedGemmPath path);

// True for the dtypes quant_gemm_mixed runs (Q8, Q4, NF4, LOG4).
bool has_mixed_gemm(DType dtype);

// Device scratch quant_gemm_mixed needs for m rows of x against w on a GPU with sm_count SMs.
size_t mixed_gemm_scratch_bytes(int m, const Tensor& w, int sm_count);

// y[m, n] = x[m, k] w[n, k]^T (+ bias), w an uploaded (repacked) Q8 / Q4 / NF4 / LOG4 matrix.
// scratch: mixed_gemm_scratch_bytes(m, w, sm_count) bytes, 256-byte aligned.
void quant_gemm_mixed(const float* x, int m, int k, const Tensor& w, const float* bias, float* y, void* scratch,
                      int sm_count, cudaStream_t stream);

}  // namespace brisk::cuda
