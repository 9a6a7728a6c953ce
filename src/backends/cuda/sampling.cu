#include "backends/cuda/sampling.cuh"

#include <cfloat>

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
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) keep_best(best, best_index, row[i], int32_t(i));
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
    // A row of -inf/NaN only: index 0, as std::max_element would answer.
    ids[blockIdx.x] = best_index == INT32_MAX ? 0 : best_index;
  }
}

}  // namespace

void argmax_rows(const float* logits, int64_t rows, int64_t vocab, int32_t* ids, cudaStream_t stream) {
  if (rows <= 0) return;
  BRISK_CHECK(vocab > 0 && vocab < (int64_t(1) << 31) && rows < (int64_t(1) << 31),
              "argmax_rows: sizes out of range");
  argmax_kernel<<<unsigned(rows), kThreads, 0, stream>>>(logits, vocab, ids);
  BRISK_CUDA_LAUNCH_CHECK();
}

}  // namespace brisk::cuda
