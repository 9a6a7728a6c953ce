#include "backends/cuda/rope.cuh"

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/kv_elements.cuh"

namespace brisk::cuda {

namespace {

constexpr int kThreads = 256;

// Rotates pair t of the batch (one thread per rotated pair (i, i + half) of one head of one row;
// a row's heads are its n_heads query heads, then its n_kv_heads key heads). Returns the key
// head's index (or -1 for a query head) and the rotated values, for a caller that stores them.
struct RotatedPair {
  int64_t row, kv_head, i;
  float lo, hi;
};
__device__ __forceinline__ RotatedPair rotate_pair(int64_t t, float* q, float* k, int64_t n_heads,
                                                   int64_t n_kv_heads, int64_t head_dim,
                                                   const int32_t* __restrict__ positions,
                                                   const float* __restrict__ cos_table,
                                                   const float* __restrict__ sin_table) {
  const int64_t half = head_dim / 2, heads = n_heads + n_kv_heads;
  const int64_t i = t % half;
  const int64_t r = t / half / heads, h = t / half - r * heads;
  const int64_t pos = positions[r];
  const float c = cos_table[pos * half + i];
  const float s = sin_table[pos * half + i];
  float* v = h < n_heads ? q + (r * n_heads + h) * head_dim
                         : k + (r * n_kv_heads + h - n_heads) * head_dim;
  const float a = v[i], b = v[i + half];
  const RotatedPair p{r, h < n_heads ? -1 : h - n_heads, i, a * c - b * s, b * c + a * s};
  v[i] = p.lo;
  v[i + half] = p.hi;
  return p;
}

__global__ void rope_kernel(float* q, float* k, int64_t rows, int64_t n_heads, int64_t n_kv_heads,
                            int64_t head_dim, const int32_t* __restrict__ positions,
                            const float* __restrict__ cos_table, const float* __restrict__ sin_table) {
  const int64_t pairs = rows * (n_heads + n_kv_heads) * (head_dim / 2);
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < pairs;
       t += int64_t(gridDim.x) * blockDim.x)
    rotate_pair(t, q, k, n_heads, n_kv_heads, head_dim, positions, cos_table, sin_table);
}

// rope_kernel's pairs, each rotated key pair also stored into the pool at its row's slot, then
// one thread per value of v copied into the pool: store_plain_kernel's stores (kv_store.cu).
template <class T>
__global__ void rope_store_kernel(float* q, float* k, const float* __restrict__ v, int64_t rows,
                                  int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                                  const int32_t* __restrict__ positions,
                                  const float* __restrict__ cos_table,
                                  const float* __restrict__ sin_table,
                                  const int32_t* __restrict__ slots, T* __restrict__ k_pool,
                                  T* __restrict__ v_pool) {
  let_dependents_launch();
  wait_for_producer();
  const int64_t half = head_dim / 2, width = n_kv_heads * head_dim;
  const int64_t pairs = rows * (n_heads + n_kv_heads) * half, total = pairs + rows * width;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += int64_t(gridDim.x) * blockDim.x) {
    if (t < pairs) {
      const RotatedPair p =
          rotate_pair(t, q, k, n_heads, n_kv_heads, head_dim, positions, cos_table, sin_table);
      if (p.kv_head < 0) continue;
      T* dst = k_pool + int64_t(slots[p.row]) * width + p.kv_head * head_dim + p.i;
      dst[0] = KvElement<T>::store(p.lo);
      dst[half] = KvElement<T>::store(p.hi);
    } else {
      const int64_t e = t - pairs, r = e / width, i = e - r * width;
      v_pool[int64_t(slots[r]) * width + i] = KvElement<T>::store(v[r * width + i]);
    }
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

bool rope_store_kv(float* q, float* k, const float* v, int64_t rows, int64_t n_heads,
                   const int32_t* positions, const float* cos_table, const float* sin_table,
                   const int32_t* slots, const KvPools& kv, cudaStream_t stream) {
  const int64_t total = rows * ((n_heads + kv.n_kv_heads) * (kv.head_dim / 2) + kv.row());
  if (rows <= 0 || total <= 0) return true;
  const dim3 grid(grid_for(total, kThreads));
  switch (kv.dtype) {
    case KvDtype::F32:
      launch_overlapped(rope_store_kernel<float>, grid, dim3(kThreads), 0, stream, q, k, v, rows, n_heads,
                        kv.n_kv_heads, kv.head_dim, positions, cos_table, sin_table, slots,
                        static_cast<float*>(kv.k), static_cast<float*>(kv.v));
      return true;
    case KvDtype::BF16:
      launch_overlapped(rope_store_kernel<uint16_t>, grid, dim3(kThreads), 0, stream, q, k, v, rows, n_heads,
                        kv.n_kv_heads, kv.head_dim, positions, cos_table, sin_table, slots,
                        static_cast<uint16_t*>(kv.k), static_cast<uint16_t*>(kv.v));
      return true;
    default:
      return false;  // a scale per head row needs the row's absmax first: kv_store.cu
  }
}

}  // namespace brisk::cuda
