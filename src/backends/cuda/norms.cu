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

// y may alias x: every read of a row happens before the barrier inside block_sum.
__global__ void __launch_bounds__(kThreads)
    rms_norm_kernel(const float* x, const float* __restrict__ weight, int64_t d, float eps,
                    float* y) {
  const float* xr = x + int64_t(blockIdx.x) * d;
  float* yr = y + int64_t(blockIdx.x) * d;
  double ss = 0.0;
  for (int64_t i = threadIdx.x; i < d; i += kThreads) ss += double(xr[i]) * double(xr[i]);
  ss = block_sum(ss);
  const float inv = float(1.0 / sqrt(ss / double(d) + double(eps)));
  for (int64_t i = threadIdx.x; i < d; i += kThreads) yr[i] = weight[i] * (xr[i] * inv);
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
  if (rows <= 0) return;
  BRISK_CHECK(rows < (int64_t(1) << 31), "rms_norm: too many rows");
  rms_norm_kernel<<<unsigned(rows), kThreads, 0, stream>>>(x, weight, d, eps, y);
  BRISK_CUDA_LAUNCH_CHECK();
}

void layer_norm(const float* x, const float* weight, const float* bias, int64_t rows, int64_t d,
                float eps, float* y, cudaStream_t stream) {
  if (rows <= 0) return;
  BRISK_CHECK(rows < (int64_t(1) << 31), "layer_norm: too many rows");
  layer_norm_kernel<<<unsigned(rows), kThreads, 0, stream>>>(x, weight, bias, d, eps, y);
  BRISK_CUDA_LAUNCH_CHECK();
}

}  // namespace brisk::cuda
