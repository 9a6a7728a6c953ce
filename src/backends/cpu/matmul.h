// y = x w^T (+ bias) on the CPU: the hot op of LLM inference. Row-major weights are read in place
// by dot-product tiles (bf16 dot products over many rows pack a small panel at a time into a
// per-thread scratch for outer-product tiles); weights stored pair-packed (BlockOrder::Bf16Pairs)
// always run the outer-product tiles.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace brisk::cpu {

// How BF16 weights are multiplied.
enum class Bf16Math : uint8_t {
  Exact,  // widened to fp32 in registers, fp32 FMAs: the numbers of an fp32 reference
  Dot,    // x rounded to bf16 once per call, AVX512-BF16 dot products (twice the multiply-add
          // rate; ~2^-9 relative error per activation), where the CPU has them
};

// y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n] if non-null). x, y fp32 row-major contiguous;
// w is [n, k] row-major, F32, F16 or BF16.
//  - F32/F16 weights: fp32 multiply-adds (f16 converted to fp32 in registers).
//  - BF16 weights: see Bf16Math; without AVX512_BF16, Dot falls back to Exact.
// Work is split over the pool's threads by blocks of output features.
void matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y,
            ThreadPool& pool, Bf16Math math = Bf16Math::Exact);

// One weight of matmul_same_input: y = x w^T (+ bias).
struct MatmulTarget {
  const Tensor* w;
  const float* bias;  // may be null
  float* y;
};

// Several matmuls of the same x with float weights of one dtype, run as one parallel job: x is
// converted once and every thread takes its share of each weight's output features.
void matmul_same_input(const float* x, int64_t m, int64_t k, const MatmulTarget* targets, int n_targets,
                       ThreadPool& pool, Bf16Math math = Bf16Math::Exact);

// Whether w is a BF16 matrix this CPU can store as BlockOrder::Bf16Pairs (AVX512-BF16, n a
// multiple of 16, k even, row-major now); pack_bf16_pairs writes that layout (w.nbytes() bytes)
// to out. matmul reads such weights with outer-product tiles at every m, bf16 dot products only.
bool packs_bf16_pairs(const Tensor& w);
void pack_bf16_pairs(const Tensor& w, void* out);

// Which kernel family runs; Auto picks the best the CPU supports. Tests and benchmarks force a
// family to cover every path on one machine.
enum class MatmulIsa : uint8_t { Auto, Avx512, Avx2 };

// True if this CPU can run `isa` for weights of dtype `wtype` with `math`.
bool matmul_isa_supported(MatmulIsa isa, DType wtype, Bf16Math math = Bf16Math::Exact);

void matmul_with_isa(MatmulIsa isa, const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias,
                     float* y, ThreadPool& pool, Bf16Math math = Bf16Math::Exact);

}  // namespace brisk::cpu
