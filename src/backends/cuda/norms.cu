#include "backends/cuda/norms.cuh"

#include "backends/cuda/cuda_common.cuh"

namespace brisk::cuda {

namespace {

constexpr int kThreads = 256;

// Sum over the block; every thread gets the result.
__device__ double block_sum(double v) {
  __shared__ double partial[kThreads / 32];
  __shared__ double total;
#pragma unroll
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    double s = lane < kThreads / 32 ? partial[lane] : 0.0;
#pragma unroll
    for (int off = 16; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) total = s;
  }
  __syncthreads();
  const double result = total;
  __syncthreads();  // a later call may overwrite `total`
  return result;
}

// Element-wise pieces of the vectorized row kernels: V is float4 (rows of a multiple of 4 floats,
// 16-byte aligned) or float.
__device__ __forceinline__ void add_to(float& a, float b) { a += b; }
__device__ __forceinline__ void add_to(float4& a, const float4& b) {
  a.x += b.x, a.y += b.y, a.z += b.z, a.w += b.w;
}
__device__ __forceinline__ double sum_squares(float v) { return double(v) * double(v); }
__device__ __forceinline__ double sum_squares(const float4& v) {
  return double(v.x) * double(v.x) + double(v.y) * double(v.y) + double(v.z) * double(v.z) +
         double(v.w) * double(v.w);
}
__device__ __forceinline__ float scaled(float w, float v, float inv) { return w * (v * inv); }
__device__ __forceinline__ float4 scaled(const float4& w, const float4& v, float inv) {
  return make_float4(w.x * (v.x * inv), w.y * (v.y * inv), w.z * (v.z * inv), w.w * (v.w * inv));
}

// One block per row. A thread's first kHeld vectors of x (and h) are all loaded before any is
// used and stay in registers for the second pass: the row costs one memory round trip, not one
// per loop iteration (a plain strided loop made a 4096-wide norm take ~6 us). With kResidual,
// x += h first (the residual add fused into the norm that follows it).
// y may alias x or h: every read of h happens before the barrier inside block_sum, and a thread
// reads back only x elements it wrote itself.
template <bool kResidual, class V>
__global__ void __launch_bounds__(kThreads)
    rms_norm_kernel(float* x, const float* h, const float* __restrict__ weight, int64_t d, float eps,
                    float* y) {
  let_dependents_launch();
  constexpr int kWidth = int(sizeof(V) / sizeof(float)), kHeld = 4;
  const int64_t n = d / kWidth, row = blockIdx.x;
  V* xr = reinterpret_cast<V*>(x + row * d);
  const V* hr = reinterpret_cast<const V*>(kResidual ? h + row * d : nullptr);
  const V* wr = reinterpret_cast<const V*>(weight);
  V* yr = reinterpret_cast<V*>(y + row * d);
  // The weights are constant: fetched before waiting for the kernel that writes x and h. Then
  // every load of x and h is issued before the first use (x and h may alias y, so the compiler
  // would not move h's loads above the stores of x itself).
  V held[kHeld], added[kHeld], wv[kHeld];
#pragma unroll
  for (int c = 0; c < kHeld; ++c) {
    const int64_t i = threadIdx.x + c * kThreads;
    if (i < n) wv[c] = wr[i];
  }
  wait_for_producer();
  double ss = 0.0;
#pragma unroll
  for (int c = 0; c < kHeld; ++c) {
    const int64_t i = threadIdx.x + c * kThreads;
    if (i < n) {
      held[c] = xr[i];
      if constexpr (kResidual) added[c] = hr[i];
    }
  }
#pragma unroll
  for (int c = 0; c < kHeld; ++c) {
    const int64_t i = threadIdx.x + c * kThreads;
    if (i >= n) break;
    if constexpr (kResidual) {
      add_to(held[c], added[c]);
      xr[i] = held[c];
    }
    ss += sum_squares(held[c]);
  }
  for (int64_t i = threadIdx.x + kHeld * kThreads; i < n; i += kThreads) {
    V v = xr[i];
    if constexpr (kResidual) {
      add_to(v, hr[i]);
      xr[i] = v;
    }
    ss += sum_squares(v);
  }
  ss = block_sum(ss);
  const float inv = float(1.0 / sqrt(ss / double(d) + double(eps)));
#pragma unroll
  for (int c = 0; c < kHeld; ++c) {
    const int64_t i = threadIdx.x + c * kThreads;
    if (i < n) yr[i] = scaled(wv[c], held[c], inv);
  }
  for (int64_t i = threadIdx.x + kHeld * kThreads; i < n; i += kThreads) yr[i] = scaled(wr[i], xr[i], inv);
}

template <bool kResidual>
void launch_rms_norm(float* x, const float* h, const float* weight, int64_t rows, int64_t d, float eps,
                     float* y, cudaStream_t stream) {
  if (rows <= 0) return;
  BRISK_CHECK(rows < (int64_t(1) << 31), "rms_norm: too many rows");
  const bool vec4 = d % 4 == 0 && alignment_of(x) >= 16 && alignment_of(weight) >= 16 &&
                    alignment_of(y) >= 16 && (!kResidual || alignment_of(h) >= 16);
  launch_overlapped(vec4 ? rms_norm_kernel<kResidual, float4> : rms_norm_kernel<kResidual, float>,
                    dim3(unsigned(rows)), dim3(kThreads), 0, stream, x, h, weight, d, eps, y);
}

__global__ void __launch_bounds__(kThreads)
    layer_norm_kernel(const float* x, const float* __restrict__ weight,
                      const float* __restrict__ bias, int64_t d, float eps, float* y) {
  const float* xr = x + int64_t(blockIdx.x) * d;
  float* yr = y + int64_t(blockIdx.x) * d;
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < d; i += kThreads) sum += xr[i];
  const double mean = block_sum(sum) / double(d);
  double var = 0.0;
  for (int64_t i = threadIdx.x; i < d; i += kThreads) {
    const double c = double(xr[i]) - mean;
    var += c * c;
  }
  var = block_sum(var) / double(d);
  const float inv = float(1.0 / sqrt(var + double(eps)));
  for (int64_t i = threadIdx.x; i < d; i += kThreads)
    yr[i] = float(double(xr[i]) - mean) * inv * weight[i] + (bias ? bias[i] : 0.0f);
}

}  // namespace

void rms_norm(const float* x, const float* weight, int64_t rows, int64_t d, float eps, float* y,
              cudaStream_t stream) {
  // The kernel writes x only when it adds a residual.
  launch_rms_norm<false>(const_cast<float*>(x), nullptr, weight, rows, d, eps, y, stream);
}

void add_rms_norm(float* x, const float* h, const float* weight, int64_t rows, int64_t d, float eps,
                  float* y, cudaStream_t stream) {
  launch_rms_norm<true>(x, h, weight, rows, d, eps, y, stream);
}

void layer_norm(const float* x, const float* weight, const float* bias, int64_t rows, int64_t d,
                float eps, float* y, cudaStream_t stream) {
  if (rows <= 0) return;
  BRISK_CHECK(rows < (int64_t(1) << 31), "layer_norm: too many rows");
  layer_norm_kernel<<<unsigned(rows), kThreads, 0, stream>>>(x, weight, bias, d, eps, y);
  BRISK_CUDA_LAUNCH_CHECK();
}

}  // namespace brisk::cuda
