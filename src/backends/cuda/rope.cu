#include "backends/cuda/rope.cuh"

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/kv_elements.cuh"

namespace brisk::cuda {

namespace {

constexpr int kThreads = 256;

// Pair t of the batch: one thread per rotated pair (i, i + half) of one head of one row; a row's
// heads are its n_heads query heads, then its n_kv_heads key heads. Where it lies and its angle
// come from positions and the cos/sin tables only -- no activations -- so a programmatic
// dependent may look them up before its wait.
struct PairSite {
  int64_t row, head, i;
  float c, s;
};
__device__ __forceinline__ PairSite pair_site(int64_t t, int64_t heads, int64_t half,
                                              const int32_t* __restrict__ positions,
                                              const float* __restrict__ cos_table,
                                              const float* __restrict__ sin_table) {
  const int64_t i = t % half;
  const int64_t r = t / half / heads, h = t / half - r * heads;
  const int64_t pos = positions[r];
  return {r, h, i, cos_table[pos * half + i], sin_table[pos * half + i]};
}

// Rotates the pair in place (q for a query head, k for a key head); returns the rotated values.
__device__ __forceinline__ float2 rotate_pair(const PairSite& p, float* q, float* k, int64_t n_heads,
                                              int64_t n_kv_heads, int64_t half) {
  float* v = p.head < n_heads ? q + (p.row * n_heads + p.head) * 2 * half
                              : k + (p.row * n_kv_heads + p.head - n_heads) * 2 * half;
  const float a = v[p.i], b = v[p.i + half];
  const float lo = a * p.c - b * p.s, hi = b * p.c + a * p.s;
  v[p.i] = lo;
  v[p.i + half] = hi;
  return {lo, hi};
}

__global__ void rope_kernel(float* q, float* k, int64_t rows, int64_t n_heads, int64_t n_kv_heads,
                            int64_t head_dim, const int32_t* __restrict__ positions,
                            const float* __restrict__ cos_table, const float* __restrict__ sin_table) {
  const int64_t half = head_dim / 2, heads = n_heads + n_kv_heads, pairs = rows * heads * half;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < pairs;
       t += int64_t(gridDim.x) * blockDim.x)
    rotate_pair(pair_site(t, heads, half, positions, cos_table, sin_table), q, k, n_heads, n_kv_heads, half);
}

// rope_kernel's pairs, each rotated key pair also stored into the pool at its row's slot, then
// one thread per value of v copied into the pool: store_plain_kernel's stores (kv_store.cu).
// Positions, angles and slots are uploaded or constant: a thread's first item looks them up
// before the wait, so only q, k and v are read after it.
template <class T>
__global__ void rope_store_kernel(float* q, float* k, const float* __restrict__ v, int64_t rows,
                                  int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                                  const int32_t* __restrict__ positions,
                                  const float* __restrict__ cos_table,
                                  const float* __restrict__ sin_table,
                                  const int32_t* __restrict__ slots, T* __restrict__ k_pool,
                                  T* __restrict__ v_pool) {
  let_dependents_launch();
  const int64_t half = head_dim / 2, heads = n_heads + n_kv_heads, width = n_kv_heads * head_dim;
  const int64_t pairs = rows * heads * half, total = pairs + rows * width;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  PairSite site{};
  int64_t slot = 0;
  auto look_up = [&](int64_t t) {
    if (t < pairs) {
      site = pair_site(t, heads, half, positions, cos_table, sin_table);
      if (site.head >= n_heads) slot = slots[site.row];
    } else if (t < total) {
      slot = slots[(t - pairs) / width];
    }
  };
  look_up(first);
  wait_for_producer();
  for (int64_t t = first; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    if (t != first) look_up(t);
    if (t < pairs) {
      const float2 r = rotate_pair(site, q, k, n_heads, n_kv_heads, half);
      if (site.head < n_heads) continue;
      T* dst = k_pool + slot * width + (site.head - n_heads) * head_dim + site.i;
      dst[0] = KvElement<T>::store(r.x);
      dst[half] = KvElement<T>::store(r.y);
    } else {
      const int64_t e = t - pairs, r = e / width, i = e - r * width;
      v_pool[slot * width + i] = KvElement<T>::store(v[r * width + i]);
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
