#include "backends/cuda/rope.cuh"

#include "backends/cuda/cuda_common.cuh"

namespace brisk::cuda {

namespace {

constexpr int kThreads = 256;

// One thread per rotated pair (i, i + half) of one head of one row; a row's heads are its n_heads
// query heads, then its n_kv_heads key heads (one launch for both tensors).
__global__ void rope_kernel(float* q, float* k, int64_t rows, int64_t n_heads, int64_t n_kv_heads,
                            int64_t head_dim, const int32_t* __restrict__ positions,
                            const float* __restrict__ cos_table, const float* __restrict__ sin_table) {
  const int64_t half = head_dim / 2, heads = n_heads + n_kv_heads;
  const int64_t pairs = rows * heads * half;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < pairs;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = t % half;
    const int64_t r = t / half / heads, h = t / half - r * heads;
    const int64_t pos = positions[r];
    const float c = cos_table[pos * half + i];
    const float s = sin_table[pos * half + i];
    float* v = h < n_heads ? q + (r * n_heads + h) * head_dim
                           : k + (r * n_kv_heads + h - n_heads) * head_dim;
    const float a = v[i], b = v[i + half];
    v[i] = a * c - b * s;
    v[i + half] = b * c + a * s;
  }
}

}  // namespace

void rope(float* q, float* k, int64_t rows, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
          const int32_t* positions, const float* cos_table, const float* sin_table,
          cudaStream_t stream) {
  if (!k) n_kv_heads = 0;
  const int64_t pairs = rows * (n_heads + n_kv_heads) * (head_dim / 2);
  if (pairs <= 0) return;
  rope_kernel<<<grid_for(pairs, kThreads), kThreads, 0, stream>>>(
      q, k, rows, n_heads, n_kv_heads, head_dim, positions, cos_table, sin_table);
  BRISK_CUDA_LAUNCH_CHECK();
}

}  // namespace brisk::cuda
