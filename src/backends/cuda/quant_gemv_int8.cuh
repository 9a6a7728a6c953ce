// GEMV (m <= 8) for the weight-only formats Q8, Q4, NF4 and LOG4 on int8 activations: the
// numerics of ref::matmul_int8_activations, which the CPU's integer kernels compute too.
//  1. quantize_x: each row of x to int8 codes per kActivationBlock (32) values, absmax / 127
//     scale, round half to even -- quantize_activation_blocks (core/quant_blocks.h) on the GPU --
//     plus the block's code sum (for Q4's zero point). Codes land in the order the GEMV's
//     integer dot products want them (a permutation within each 32-value block).
//  2. The GEMV (one launch for all the matrices that share x): weight codes stay integers (int8; 4-bit nibbles masked out to bytes; NF4 / LOG4
//     looked up in their int8 codebook with byte permutes), __dp4a per 4 values, one int32 dot per
//     32-value block and row, which becomes fp32 through the activation block's scale (and the
//     4-bit group's scale). Launched as a programmatic dependent of step 1 (sm_90), so its launch
//     and first weight loads overlap the quantization.
// Why integers: widening codes to fp32 and one fp32 FMA per value made the old kernel
// arithmetic-bound at 25-70% of memory bandwidth; dp4a does 4 values per instruction.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "core/tensor.h"
#include "ops/backend.h"

namespace brisk::cuda {

// True for the dtypes quant_gemv_int8 runs (Q8, Q4, NF4, LOG4).
bool has_int8_activation_gemv(DType dtype);

// Device scratch quant_gemv_int8 needs for m rows against w (the quantized x).
size_t int8_activation_bytes(int m, const Tensor& w);

// Step 1 alone, codes in value order (no staging permutation): x[m, k] -> codes [m, ld] (zero
// past k) and per 32 values {scale, code sum as int bits} [m, ld / 32], ld a multiple of 32.
// Launched as a programmatic dependent (sm_90), like every kernel of the decode chain.
void quantize_activation_blocks(const float* x, int m, int k, int64_t ld, int8_t* codes, float2* blocks,
                                cudaStream_t stream);

// Every target's y[m, n] = x[m, k] w[n, k]^T (+ bias) for m in 1..8, each w a repacked matrix of
// a dtype above. x is quantized once, and one GEMV runs over the rows of all 1..3 targets (q/k/v,
// gate/up), so they must share dtype and k. swiglu (two targets, gate and up, of one shape):
// targets[0].y gets silu(gate) * up instead (what silu_mul makes of the two outputs, bit for
// bit) and targets[1].y is not written. scratch: int8_activation_bytes(m, w) bytes of device
// memory, 256-byte aligned.
void quant_gemv_int8(const float* x, int m, int k, const Backend::MatmulOutput* targets, int count, bool swiglu,
                     int sm_count, void* scratch, cudaStream_t stream);

}  // namespace brisk::cuda
