// y = x w^T (+ bias) for quantized weights (block dtypes of core/quant_blocks.h). Called by
// cpu::matmul when w.dtype is a block format, so models need no changes.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace brisk::cpu {

// Which kernels run: Auto picks AVX-512 (with VNNI for Q8A8) where the CPU has it, else the
// portable scalar path. Tests force each to cover both on one machine.
enum class QuantKernels : uint8_t { Auto, Avx512, Scalar };

bool quant_kernels_supported(QuantKernels which, DType wtype);

// Weight-only formats: fp32 activations times weights dequantized in registers, fp32 sums.
// Q8A8: each activation row is quantized to int8 per token (absmax / 127) at run time, then int8
// dot products (u8 x s8 with a +128 offset corrected by the weight row sums).
void matmul_quant(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y,
                  ThreadPool& pool, QuantKernels which = QuantKernels::Auto);

}  // namespace brisk::cpu
