#include "backends/cuda/elementwise.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "backends/cuda/cuda_common.cuh"

namespace brisk::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void to_bf16_kernel(const float* __restrict__ x, uint16_t* __restrict__ y, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __bfloat16_as_ushort(__float2bfloat16_rn(x[i]));
}

__global__ void to_f16_kernel(const float* __restrict__ x, uint16_t* __restrict__ y, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __half_as_ushort(__float2half_rn(x[i]));
}

__global__ void silu_mul_kernel(const float* __restrict__ gate, const float* __restrict__ up,
                                float* out, int64_t n) {
  // out may alias gate (the models write the product over the gate buffer): no __restrict__.
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void gelu_tanh_kernel(float* x, int64_t n) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
  }
}

__global__ void add_kernel(float* x, const float* y, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    x[i] += y[i];
}

__global__ void mul_kernel(float* x, const float* y, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    x[i] *= y[i];
}

__global__ void scale_kernel(float* x, int64_t n, float s) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    x[i] *= s;
}

__global__ void soft_cap_kernel(float* x, int64_t n, float cap) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    x[i] = cap * tanhf(x[i] / cap);
}

__global__ void gelu_erf_kernel(float* x, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

__device__ __forceinline__ float load_f32(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load_f32(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
__device__ __forceinline__ float load_f32(const __half* p, int64_t i) { return __half2float(p[i]); }

// Block row y copies table row ids[y]. An id out of range (the host cannot check ids that live on
// the device) yields a NaN row rather than a read past the table.
template <class T>
__global__ void gather_kernel(const T* __restrict__ table, int64_t rows, int64_t d,
                              const int32_t* __restrict__ ids, float* __restrict__ out,
                              bool accumulate) {
  const int64_t r = blockIdx.y;
  const int32_t id = ids[r];
  const bool valid = id >= 0 && id < rows;
  const T* src = table + (valid ? int64_t(id) : 0) * d;
  float* dst = out + r * d;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < d;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float v = valid ? load_f32(src, i) : __int_as_float(0x7fc00000);
    dst[i] = accumulate ? dst[i] + v : v;
  }
}

template <class T>
void launch_gather(const T* table, int64_t rows, int64_t d, const int32_t* ids, int64_t n,
                   float* out, bool accumulate, cudaStream_t stream) {
  constexpr int64_t kMaxGridY = 65535;
  for (int64_t first = 0; first < n; first += kMaxGridY) {
    const int64_t count = std::min(kMaxGridY, n - first);
    const dim3 grid(grid_for(d, kThreads, 64), unsigned(count));
    gather_kernel<T><<<grid, kThreads, 0, stream>>>(table, rows, d, ids + first, out + first * d,
                                                    accumulate);
    BRISK_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace

void convert_f32_to_bf16(const float* x, uint16_t* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  to_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, y, n);
  BRISK_CUDA_LAUNCH_CHECK();
}

void convert_f32_to_f16(const float* x, uint16_t* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  to_f16_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, y, n);
  BRISK_CUDA_LAUNCH_CHECK();
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  silu_mul_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(gate, up, out, n);
  BRISK_CUDA_LAUNCH_CHECK();
}

void gelu_tanh(float* x, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  gelu_tanh_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, n);
  BRISK_CUDA_LAUNCH_CHECK();
}

void add(float* x, const float* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  add_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, y, n);
  BRISK_CUDA_LAUNCH_CHECK();
}

void mul(float* x, const float* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  mul_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, y, n);
  BRISK_CUDA_LAUNCH_CHECK();
}

void scale(float* x, int64_t n, float s, cudaStream_t stream) {
  if (n <= 0) return;
  scale_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, n, s);
  BRISK_CUDA_LAUNCH_CHECK();
}

void soft_cap(float* x, int64_t n, float cap, cudaStream_t stream) {
  if (n <= 0) return;
  soft_cap_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, n, cap);
  BRISK_CUDA_LAUNCH_CHECK();
}

void gelu_erf(float* x, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  gelu_erf_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, n);
  BRISK_CUDA_LAUNCH_CHECK();
}

void gather_rows(const Tensor& table, const int32_t* ids, int64_t n, float* out,
                 bool accumulate, cudaStream_t stream) {
  BRISK_CHECK(table.device == Device::CUDA && table.rank() == 2,
              "CudaBackend::gather_rows: table must be a [rows, d] tensor in device memory");
  const int64_t rows = table.dim(0), d = table.dim(1);
  if (n <= 0 || d <= 0) return;
  switch (table.dtype) {
    case DType::F32:
      return launch_gather(table.as<const float>(), rows, d, ids, n, out, accumulate, stream);
    case DType::BF16:
      return launch_gather(table.as<const __nv_bfloat16>(), rows, d, ids, n, out, accumulate, stream);
    case DType::F16:
      return launch_gather(table.as<const __half>(), rows, d, ids, n, out, accumulate, stream);
    default:
      BRISK_CHECK(false, "gather_rows: table must be F32, F16 or BF16");
  }
}

void copy_2d(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
             int64_t cols, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  BRISK_CHECK(src_stride >= cols && dst_stride >= cols, "copy_2d: stride smaller than a row");
  BRISK_CUDA_CHECK(cudaMemcpy2DAsync(dst, size_t(dst_stride) * sizeof(float), src,
                                     size_t(src_stride) * sizeof(float), size_t(cols) * sizeof(float),
                                     size_t(rows), cudaMemcpyDeviceToDevice, stream));
}

}  // namespace brisk::cuda
