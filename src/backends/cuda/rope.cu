#include "backends/cuda/rope.cuh"

#include "backends/cuda/cuda_common.cuh"

namespace brisk::cuda {

namespace {

constexpr int kThreads = 256;

// One thread per rotated pair (i, i + half) of one head of one row.
__global__ void rope_kernel(float* x, int64_t rows, int64_t n_heads, int64_t head_dim,
                            const int32_t* __restrict__ positions, const float* __restrict__ cos_table,
                            const float* __restrict__ sin_table) {
  const int64_t half = head_dim / 2;
  const int64_t pairs = rows * n_heads * half;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < pairs;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = t % half;
    const int64_t head = t / half;  // r * n_heads + h
    const int64_t r = head / n_heads;
    const int64_t pos = positions[r];
    const float c = cos_table[pos * half + i];
    const float s = sin_table[pos * half + i];
    float* v = x + head * head_dim;
    const float a = v[i], b = v[i + half];
    v[i] = a * c - b * s;
    v[i + half] = b * c + a * s;
  }
}

}  // namespace

void rope(float* x, int64_t rows, int64_t n_heads, int64_t head_dim, const int32_t* positions,
          const float* cos_table, const float* sin_table, cudaStream_t stream) {
  const int64_t pairs = rows * n_heads * (head_dim / 2);
  if (pairs <= 0) return;
  rope_kernel<<<grid_for(pairs, kThreads), kThreads, 0, stream>>>(
      x, rows, n_heads, head_dim, positions, cos_table, sin_table);
  BRISK_CUDA_LAUNCH_CHECK();
}

}  // namespace brisk::cuda
