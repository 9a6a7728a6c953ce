#include "backends/cuda/sampling.cuh"

#include <cfloat>
#include <cmath>

#include "backends/cuda/cuda_common.cuh"

namespace brisk::cuda {

namespace {

constexpr int kThreads = 512;

// The better of two candidates: the larger value, or on equal values the lower index.
__device__ __forceinline__ void keep_best(float& value, int32_t& index, float other_value,
                                          int32_t other_index) {
  if (other_value > value || (other_value == value && other_index < index)) {
    value = other_value;
    index = other_index;
  }
}

// One block per row: a strided pass per thread, then a warp and a block reduction.
__global__ void __launch_bounds__(kThreads) argmax_kernel(const float* __restrict__ logits,
                                                         int64_t vocab, int32_t* __restrict__ ids) {
  const float* row = logits + int64_t(blockIdx.x) * vocab;
  float best = -FLT_MAX;
  int32_t best_index = INT32_MAX;
  bool nan = false;
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
    nan |= isnan(row[i]);
    keep_best(best, best_index, row[i], int32_t(i));
  }
  const bool any_nan = __syncthreads_or(nan) != 0;
#pragma unroll
  for (int off = 16; off > 0; off /= 2) {
    const float v = __shfl_xor_sync(0xffffffffu, best, off);
    const int32_t j = __shfl_xor_sync(0xffffffffu, best_index, off);
    keep_best(best, best_index, v, j);
  }
  __shared__ float warp_best[kThreads / 32];
  __shared__ int32_t warp_index[kThreads / 32];
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  if (lane == 0) {
    warp_best[warp] = best;
    warp_index[warp] = best_index;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) keep_best(best, best_index, warp_best[w], warp_index[w]);
    // A NaN anywhere, or no finite maximum: kNonFiniteLogits, as ref::argmax_row answers.
    ids[blockIdx.x] = any_nan || best_index == INT32_MAX || !isfinite(best) ? kNonFiniteLogits : best_index;
  }
}

// ---- sample_rows: ops/sampling.h's steps, one block per row -------------------------------------

constexpr int kSampleThreads = 1024;
constexpr int kSampleWarps = kSampleThreads / 32;
constexpr int kBins = 256;  // radix digits of 8 bits: four passes over a 32-bit key

struct Best {
  float value;
  int32_t index;  // INT32_MAX: none yet
};

// The block's best (largest value, then lowest index); every thread gets it. Reduced in a fixed
// order, so repeated runs agree bit for bit.
__device__ Best block_best(Best b, Best* scratch) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) {
    const float v = __shfl_xor_sync(0xffffffffu, b.value, off);
    const int32_t j = __shfl_xor_sync(0xffffffffu, b.index, off);
    keep_best(b.value, b.index, v, j);
  }
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = b;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kSampleWarps; ++w) keep_best(b.value, b.index, scratch[w].value, scratch[w].index);
    scratch[0] = b;
  }
  __syncthreads();
  const Best result = scratch[0];
  __syncthreads();  // scratch is free again
  return result;
}

__device__ float block_sum(float v, float* scratch) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kSampleWarps; ++w) v += scratch[w];
    scratch[0] = v;
  }
  __syncthreads();
  const float result = scratch[0];
  __syncthreads();
  return result;
}

struct CutBins {
  unsigned int count[kBins];
  unsigned long long weight[kBins];  // fixed point: integer sums are exact and order-free
  int chosen;
  unsigned long long above;
};

// What top-k and top-p share (ops/sampling.h step 3): among the tokens whose key is at least
// floor_key, the smallest key x such that the tokens with a key strictly above x weigh less than
// limit (> 0). Weight is 1 per token (top-k, limit k) or the token's softmax mass in units of
// 2^-32 (top-p, limit p * 2^32). A radix select over the keys, most significant digit first: each
// pass histograms the tokens that share the digits chosen so far and keeps the lowest digit whose
// weight above still stays under the limit.
template <bool kByMass>
__device__ uint32_t find_cut(const float* row, int64_t vocab, uint32_t floor_key, unsigned long long limit,
                             float max_logit, float temperature, float mass_scale, CutBins& bins) {
  uint32_t prefix = 0, mask = 0;
  unsigned long long above = 0;  // weight of the tokens above the current prefix: below limit
  const int lane = int(threadIdx.x % 32);
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = int(threadIdx.x); b < kBins; b += kSampleThreads) {
      bins.count[b] = 0;
      bins.weight[b] = 0;
    }
    __syncthreads();
    // The trip count is the same for every thread, so whole warps meet at __match_any_sync.
    for (int64_t base = 0; base < vocab; base += kSampleThreads) {
      const int64_t i = base + int64_t(threadIdx.x);
      unsigned bin = kBins;  // none
      float logit = 0.0f;
      if (i < vocab) {
        logit = row[i];
        const uint32_t key = sampling::order_key(logit);
        if (key >= floor_key && (key & mask) == prefix) bin = (key >> shift) & 0xFFu;
      }
      // Logits crowd into few digits: one atomic per distinct digit per warp, not per token.
      const unsigned peers = __match_any_sync(0xffffffffu, bin);
      if (bin == kBins) continue;
      if (lane == __ffs(peers) - 1) atomicAdd(&bins.count[bin], unsigned(__popc(peers)));
      if (kByMass) {
        const float mass = expf(sampling::scaled_logit(logit, max_logit, temperature)) * mass_scale;
        atomicAdd(&bins.weight[bin], __float2ull_rn(mass));
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      unsigned long long running = above;
      int chosen = -1;
      unsigned long long chosen_above = 0;
      for (int b = kBins - 1; b >= 0 && running < limit; --b) {
        if (bins.count[b] == 0) continue;
        chosen = b;
        chosen_above = running;
        running += kByMass ? bins.weight[b] : bins.count[b];
      }
      // The first non-empty digit always qualifies (its weight above is `above` < limit).
      bins.chosen = chosen < 0 ? 0 : chosen;
      bins.above = chosen_above;
    }
    __syncthreads();
    prefix |= uint32_t(bins.chosen) << shift;
    mask |= 0xFFu << shift;
    above = bins.above;
    __syncthreads();  // bins are cleared by the next pass
  }
  return prefix;
}

// Not __restrict__ and not const: the penalties write the row that the later passes read.
__global__ void __launch_bounds__(kSampleThreads) sample_kernel(float* logits, int64_t vocab,
                                                                const SampleRowParams* all_params,
                                                                const TokenCount* counts,
                                                                const uint32_t* allowed, int32_t* ids) {
  __shared__ Best best_scratch[kSampleWarps];
  __shared__ float sum_scratch[kSampleWarps];
  __shared__ CutBins bins;
  float* row = logits + int64_t(blockIdx.x) * vocab;
  const SampleRowParams p = all_params[blockIdx.x];

  // 0. The allowed mask (constrained decoding).
  if (p.first_allowed_word >= 0) {
    const uint32_t* mask = allowed + p.first_allowed_word;
    for (int64_t i = threadIdx.x; i < vocab; i += kSampleThreads)
      if (!sampling::token_allowed(mask, i)) row[i] = -INFINITY;
    __syncthreads();
  }

  // 1. Penalties: each listed token once, so no two threads touch one logit.
  for (int32_t e = int32_t(threadIdx.x); e < p.n_counts; e += kSampleThreads) {
    const TokenCount c = counts[p.first_count + e];
    row[c.token] = sampling::penalized_logit(row[c.token], c, p);
  }
  __syncthreads();  // the edits are visible to the whole block from here

  // 2. The argmax (greedy's answer, and the max the softmax is taken against).
  Best best = {-INFINITY, INT32_MAX};
  bool nan = false;
  for (int64_t i = threadIdx.x; i < vocab; i += kSampleThreads) {
    nan |= isnan(row[i]);
    keep_best(best.value, best.index, row[i], int32_t(i));
  }
  const bool any_nan = __syncthreads_or(nan) != 0;
  best = block_best(best, best_scratch);
  const float max_logit = best.value;
  const int32_t argmax = best.index;
  if (any_nan || argmax == INT32_MAX || !isfinite(max_logit)) {  // as ref::argmax_row
    if (threadIdx.x == 0) ids[blockIdx.x] = kNonFiniteLogits;
    return;
  }
  if (p.temperature <= 0.0f) {
    if (threadIdx.x == 0) ids[blockIdx.x] = argmax;
    return;
  }

  // 3. Survivors: key >= cut (top-k, then top-p over the top-k survivors), then min-p per token.
  uint32_t cut = 0;
  if (sampling::top_k_active(p.top_k, vocab))
    cut = find_cut<false>(row, vocab, 0, (unsigned long long)p.top_k, max_logit, p.temperature, 0.0f, bins);
  const unsigned long long mass_limit =
      p.top_p > 0.0f && p.top_p < 1.0f ? (unsigned long long)(double(p.top_p) * 4294967296.0) : 0;
  if (p.top_p <= 0.0f || (p.top_p < 1.0f && mass_limit == 0)) {
    cut = sampling::order_key(max_logit);
  } else if (p.top_p < 1.0f) {
    float local = 0.0f;
    for (int64_t i = threadIdx.x; i < vocab; i += kSampleThreads)
      if (sampling::order_key(row[i]) >= cut) local += expf(sampling::scaled_logit(row[i], max_logit, p.temperature));
    const float total = block_sum(local, sum_scratch);  // >= 1: the best token contributes exp(0)
    cut = find_cut<true>(row, vocab, cut, mass_limit, max_logit, p.temperature, 4294967296.0f / total, bins);
  }

  // 4. The draw: the survivor with the largest z + Gumbel noise.
  Best pick = {-INFINITY, INT32_MAX};
  for (int64_t i = threadIdx.x; i < vocab; i += kSampleThreads) {
    const float logit = row[i];
    if (sampling::order_key(logit) < cut) continue;
    const float z = sampling::scaled_logit(logit, max_logit, p.temperature);
    if (!sampling::passes_min_p(z, p.min_p)) continue;
    keep_best(pick.value, pick.index, z + sampling::gumbel_noise(p.seed, p.step, i), int32_t(i));
  }
  pick = block_best(pick, best_scratch);
  if (threadIdx.x == 0) ids[blockIdx.x] = pick.index == INT32_MAX ? argmax : pick.index;
}

}  // namespace

void argmax_rows(const float* logits, int64_t rows, int64_t vocab, int32_t* ids, cudaStream_t stream) {
  if (rows <= 0) return;
  BRISK_CHECK(vocab > 0 && vocab < (int64_t(1) << 31) && rows < (int64_t(1) << 31),
              "argmax_rows: sizes out of range");
  argmax_kernel<<<unsigned(rows), kThreads, 0, stream>>>(logits, vocab, ids);
  BRISK_CUDA_LAUNCH_CHECK();
}

void sample_rows(float* logits, int64_t rows, int64_t vocab, const SampleRowParams* params,
                 const TokenCount* counts, const uint32_t* allowed, int32_t* ids, cudaStream_t stream) {
  if (rows <= 0) return;
  BRISK_CHECK(vocab > 0 && vocab < (int64_t(1) << 31) && rows < (int64_t(1) << 31),
              "sample_rows: sizes out of range");
  sample_kernel<<<unsigned(rows), kSampleThreads, 0, stream>>>(logits, vocab, params, counts, allowed, ids);
  BRISK_CUDA_LAUNCH_CHECK();
}

}  // namespace brisk::cuda
