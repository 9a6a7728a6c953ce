// y = x w^T (+ bias) for quantized weights (block dtypes of core/quant_blocks.h). Called by
// cpu::matmul when w.dtype is a block format, so models need no changes.
#pragma once

#include <cstdint>

#include "backends/cpu/matmul.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace brisk::cpu {

// Which kernels run. Auto picks Avx512Int8 where the CPU has AVX-512 VNNI and the format has
// integer tiles (Q8, Q4, NF4, LOG4), else Avx512 (with VNNI for Q8A8), else the portable scalar
// path. Tests force each to cover all on one machine.
//   Avx512Int8: activations quantized to int8 per 32 values, integer dot products (the numerics
//               of ref::matmul_int8_activations)
//   Avx512, Scalar: fp32 activations times dequantized weights (the numerics of ref::matmul)
enum class QuantKernels : uint8_t { Auto, Avx512Int8, Avx512, Scalar };

bool quant_kernels_supported(QuantKernels which, DType wtype);

// BlockOrder::Interleaved8 (core/tensor.h): decode reads each thread's weights as one sequential
// stream. interleaves_for_decode: whether w (row-major) has that layout here: a [n, k] matrix
// with n a multiple of kInterleaveRows whose format has integer tiles on this CPU, the only
// kernels that read it. interleave_rows writes it (w.nbytes() bytes) to out.
constexpr int64_t kInterleaveRows = 8;
bool interleaves_for_decode(const Tensor& w);
void interleave_rows(const Tensor& w, void* out);

// Weight-only formats: fp32 activations times weights dequantized in registers, fp32 sums, or
// (Avx512Int8) int8 activations per 32 values times the weight codes in int32, scaled per block.
// Q8A8: each activation row is quantized to int8 per token (absmax / 127) at run time, then int8
// dot products (u8 x s8 with a +128 offset corrected by the weight row sums).
void matmul_quant(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y,
                  ThreadPool& pool, QuantKernels which = QuantKernels::Auto);

// Several weights of one quantized dtype times the same x (q/k/v, gate/up): the activations are
// prepared once and all weights run as one parallel job (one fork/join per call, not per weight).
void matmul_quant_same_input(const float* x, int64_t m, int64_t k, const MatmulTarget* targets, int n_targets,
                             ThreadPool& pool, QuantKernels which = QuantKernels::Auto);

}  // namespace brisk::cpu
