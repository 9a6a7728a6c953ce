#include "backends/cuda/kv_store.cuh"

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/kv_elements.cuh"

namespace brisk::cuda {

namespace {

constexpr int kThreads = 256;

// F32/BF16: one thread per element of k (and the same element of v).
template <class T>
__global__ void store_plain_kernel(const float* __restrict__ k, const float* __restrict__ v, int64_t rows,
                                   int64_t width, int64_t src_stride, const int32_t* __restrict__ slots,
                                   T* __restrict__ k_pool, T* __restrict__ v_pool) {
  const int64_t total = rows * width;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = t / width, i = t % width;
    const int64_t dst = int64_t(slots[r]) * width + i;
    k_pool[dst] = KvElement<T>::store(k[r * src_stride + i]);
    v_pool[dst] = KvElement<T>::store(v[r * src_stride + i]);
  }
}

// The absmax of a warp's values (NaN sticks, as in kv_quantize_row).
__device__ float warp_absmax(float m) {
  for (int off = 16; off > 0; off /= 2) {
    const float o = __shfl_xor_sync(0xffffffffu, m, off);
    if (!(o <= m)) m = o;
  }
  return m;
}

// One head row of k or v (n values at src) -> codes at dst and its scale; one warp per row.
template <class T>
__device__ void quantize_head_row(const float* src, int n, T* dst, float* scale) {
  const int lane = int(threadIdx.x) % 32;
  float m = 0.0f;
  for (int i = lane; i < n; i += 32) {
    const float a = fabsf(src[i]);
    if (!(a <= m)) m = a;
  }
  const float absmax = warp_absmax(m);
  const bool finite = isfinite(absmax);
  // The expressions of kv_quantize_row, so both sides write the same codes.
  const float inv = finite && absmax > 0.0f ? KvElement<T>::kCodeMax / absmax : 0.0f;
  for (int i = lane; i < n; i += 32) dst[i] = finite ? KvElement<T>::encode(src[i] * inv) : T(0);
  if (lane == 0) *scale = finite ? absmax / KvElement<T>::kCodeMax : absmax;
}

// I8/F8: one warp per (row, kv head) of k and the same of v.
template <class T>
__global__ void store_scaled_kernel(const float* __restrict__ k, const float* __restrict__ v, int64_t rows,
                                    int n_kv_heads, int head_dim, int64_t src_stride,
                                    const int32_t* __restrict__ slots, T* k_pool, T* v_pool, float* k_scales,
                                    float* v_scales) {
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (warp >= rows * n_kv_heads) return;
  const int64_t r = warp / n_kv_heads, h = warp % n_kv_heads;
  const int64_t head_row = int64_t(slots[r]) * n_kv_heads + h;
  const int64_t src = r * src_stride + h * head_dim;
  quantize_head_row(k + src, head_dim, k_pool + head_row * head_dim, k_scales + head_row);
  quantize_head_row(v + src, head_dim, v_pool + head_row * head_dim, v_scales + head_row);
}

template <class T>
void launch_plain(const float* k, const float* v, int64_t rows, int64_t src_stride, const int32_t* slots,
                  const KvPools& kv, cudaStream_t stream) {
  store_plain_kernel<T><<<grid_for(rows * kv.row(), kThreads), kThreads, 0, stream>>>(
      k, v, rows, kv.row(), src_stride, slots, static_cast<T*>(kv.k), static_cast<T*>(kv.v));
  BRISK_CUDA_LAUNCH_CHECK();
}

template <class T>
void launch_scaled(const float* k, const float* v, int64_t rows, int64_t src_stride, const int32_t* slots,
                   const KvPools& kv, cudaStream_t stream) {
  const int64_t warps = rows * kv.n_kv_heads;
  store_scaled_kernel<T><<<unsigned(ceil_div(warps * 32, kThreads)), kThreads, 0, stream>>>(
      k, v, rows, int(kv.n_kv_heads), int(kv.head_dim), src_stride, slots, static_cast<T*>(kv.k),
      static_cast<T*>(kv.v), kv.k_scales, kv.v_scales);
  BRISK_CUDA_LAUNCH_CHECK();
}

}  // namespace

void store_kv(const float* k, const float* v, int64_t rows, int64_t src_stride, const int32_t* slots,
              const KvPools& kv, cudaStream_t stream) {
  if (rows <= 0 || kv.row() <= 0) return;
  switch (kv.dtype) {
    case KvDtype::F32: return launch_plain<float>(k, v, rows, src_stride, slots, kv, stream);
    case KvDtype::BF16: return launch_plain<uint16_t>(k, v, rows, src_stride, slots, kv, stream);
    case KvDtype::I8: return launch_scaled<int8_t>(k, v, rows, src_stride, slots, kv, stream);
    case KvDtype::F8: return launch_scaled<uint8_t>(k, v, rows, src_stride, slots, kv, stream);
  }
}

}  // namespace brisk::cuda
