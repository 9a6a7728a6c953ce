#include "backends/cuda/kv_store.cuh"

#include "backends/cuda/cuda_common.cuh"

namespace brisk::cuda {

namespace {

constexpr int kThreads = 256;

// One thread per element of k (and the same element of v).
__global__ void store_kv_kernel(const float* __restrict__ k, const float* __restrict__ v,
                                int64_t rows, int64_t width, int64_t src_stride,
                                const int32_t* __restrict__ slots, float* __restrict__ k_pool,
                                float* __restrict__ v_pool) {
  const int64_t total = rows * width;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = t / width, i = t % width;
    const int64_t dst = int64_t(slots[r]) * width + i;
    k_pool[dst] = k[r * src_stride + i];
    v_pool[dst] = v[r * src_stride + i];
  }
}

}  // namespace

void store_kv(const float* k, const float* v, int64_t rows, int64_t width, int64_t src_stride,
              const int32_t* slots, float* k_pool, float* v_pool, cudaStream_t stream) {
  if (rows <= 0 || width <= 0) return;
  store_kv_kernel<<<grid_for(rows * width, kThreads), kThreads, 0, stream>>>(
      k, v, rows, width, src_stride, slots, k_pool, v_pool);
  BRISK_CUDA_LAUNCH_CHECK();
}

}  // namespace brisk::cuda
