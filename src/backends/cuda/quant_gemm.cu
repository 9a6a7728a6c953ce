#include <cuda_fp8.h>

#include <type_traits>

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/quant_gemm.cuh"

namespace brisk::cuda {

namespace {

constexpr int kQuantThreads = 256;

// Values j .. j + 3 of a row, zeros at and past k. `vec`: the row is 16-byte aligned and k % 4 == 0,
// so a group is either wholly inside the row or wholly past it.
__device__ __forceinline__ float4 load4(const float* row, int64_t j, int64_t k, bool vec) {
  if (vec) return j < k ? *reinterpret_cast<const float4*>(row + j) : make_float4(0.f, 0.f, 0.f, 0.f);
  float v[4];
#pragma unroll
  for (int e = 0; e < 4; ++e) v[e] = j + e < k ? row[j + e] : 0.0f;
  return make_float4(v[0], v[1], v[2], v[3]);
}

template <ActivationCode C>
__device__ __forceinline__ uint32_t encode(float v) {
  if constexpr (C == ActivationCode::Int8) {
    // |v| <= 127 by construction (v = x * 127 / absmax), so the code needs no clamp.
    return uint32_t(uint8_t(int8_t(int(rintf(v)))));
  } else {
    return uint32_t(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
  }
}

// One block per token row: the row's absmax, then its codes four at a time (one 32-bit store).
template <ActivationCode C>
__global__ void __launch_bounds__(kQuantThreads)
    quantize_activations_kernel(const float* __restrict__ x, int64_t k, int64_t depth, bool vec,
                                uint8_t* __restrict__ codes, float* __restrict__ scales) {
  constexpr float kLimit = C == ActivationCode::Int8 ? 127.0f : 448.0f;
  const float* row = x + int64_t(blockIdx.x) * k;
  float mx = 0.0f;
  for (int64_t j = int64_t(threadIdx.x) * 4; j < k; j += kQuantThreads * 4) {
    const float4 v = load4(row, j, k, vec);
    mx = fmaxf(fmaxf(mx, fmaxf(fabsf(v.x), fabsf(v.y))), fmaxf(fabsf(v.z), fabsf(v.w)));
  }
  const float absmax = block_absmax<kQuantThreads>(mx);
  // The host's arithmetic, operation for operation: IEEE division, then one rounded product.
  const float inv = absmax > 0.0f ? kLimit / absmax : 0.0f;
  if (threadIdx.x == 0) scales[blockIdx.x] = absmax / kLimit;
  auto* dst = reinterpret_cast<uint32_t*>(codes + int64_t(blockIdx.x) * depth);
  for (int64_t j = int64_t(threadIdx.x) * 4; j < depth; j += kQuantThreads * 4) {
    const float4 v = load4(row, j, k, vec);  // zeros past k encode as code 0 in both formats
    dst[j / 4] = encode<C>(__fmul_rn(v.x, inv)) | encode<C>(__fmul_rn(v.y, inv)) << 8 |
                 encode<C>(__fmul_rn(v.z, inv)) << 16 | encode<C>(__fmul_rn(v.w, inv)) << 24;
  }
}

__device__ __forceinline__ float scaled(float acc, float sx, float sw) {
  return __fmul_rn(__fmul_rn(acc, sx), sw);
}

// Grid-stride over groups of 4 outputs of one row (n % 4 == 0, acc and y 16-byte aligned) or over
// single outputs. acc and y may be the same memory: each element is read before it is written, by
// the same thread, so neither pointer is __restrict__.
template <class Acc, bool kVector>
__global__ void scale_output_kernel(const Acc* acc, int64_t m, int64_t n, const float* __restrict__ sx,
                                    const float* __restrict__ sw, const float* __restrict__ bias, float* y) {
  constexpr int kWidth = kVector ? 4 : 1;
  const int64_t total = m * n / kWidth;
  for (int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; g < total;
       g += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = g * kWidth, i = e / n, j = e - i * n;
    const float s = sx[i];
    if constexpr (kVector) {
      using Vec = typename std::conditional<std::is_same<Acc, int32_t>::value, int4, float4>::type;
      const Vec a = reinterpret_cast<const Vec*>(acc)[g];
      const float4 w = *reinterpret_cast<const float4*>(sw + j);
      float4 out = make_float4(scaled(float(a.x), s, w.x), scaled(float(a.y), s, w.y),
                               scaled(float(a.z), s, w.z), scaled(float(a.w), s, w.w));
      if (bias) {
        out.x = __fadd_rn(out.x, bias[j]);
        out.y = __fadd_rn(out.y, bias[j + 1]);
        out.z = __fadd_rn(out.z, bias[j + 2]);
        out.w = __fadd_rn(out.w, bias[j + 3]);
      }
      reinterpret_cast<float4*>(y)[g] = out;
    } else {
      const float out = scaled(float(acc[e]), s, sw[j]);
      y[e] = bias ? __fadd_rn(out, bias[j]) : out;
    }
  }
}

template <class Acc>
void launch_scale_output(const Acc* acc, int64_t m, int64_t n, const float* sx, const float* sw,
                         const float* bias, float* y, cudaStream_t stream) {
  constexpr int kThreads = 256;
  // w_scales come from the uploaded weight (16-byte aligned params); checked anyway.
  const bool vector =
      n % 4 == 0 && alignment_of(acc) >= 16 && alignment_of(y) >= 16 && alignment_of(sw) >= 16;
  if (vector)
    scale_output_kernel<Acc, true>
        <<<grid_for(m * n / 4, kThreads), kThreads, 0, stream>>>(acc, m, n, sx, sw, bias, y);
  else
    scale_output_kernel<Acc, false>
        <<<grid_for(m * n, kThreads), kThreads, 0, stream>>>(acc, m, n, sx, sw, bias, y);
  BRISK_CUDA_LAUNCH_CHECK();
}

}  // namespace

void quantize_activations(const float* x, int64_t m, int64_t k, int64_t depth, ActivationCode code,
                          uint8_t* codes, float* scales, cudaStream_t stream) {
  BRISK_CHECK(m >= 1 && m <= 2147483647, "quantize_activations: bad row count");
  BRISK_CHECK(depth >= k && depth % 16 == 0 && alignment_of(codes) >= 16,
              "quantize_activations: codes rows must be 16-byte multiples covering k");
  const bool vec = k % 4 == 0 && alignment_of(x) >= 16;
  if (code == ActivationCode::Int8)
    quantize_activations_kernel<ActivationCode::Int8>
        <<<unsigned(m), kQuantThreads, 0, stream>>>(x, k, depth, vec, codes, scales);
  else
    quantize_activations_kernel<ActivationCode::E4m3>
        <<<unsigned(m), kQuantThreads, 0, stream>>>(x, k, depth, vec, codes, scales);
  BRISK_CUDA_LAUNCH_CHECK();
}

void scale_gemm_output(const int32_t* acc, int64_t m, int64_t n, const float* x_scales, const float* w_scales,
                       const float* bias, float* y, cudaStream_t stream) {
  launch_scale_output(acc, m, n, x_scales, w_scales, bias, y, stream);
}

void scale_gemm_output(const float* acc, int64_t m, int64_t n, const float* x_scales, const float* w_scales,
                       const float* bias, float* y, cudaStream_t stream) {
  launch_scale_output(acc, m, n, x_scales, w_scales, bias, y, stream);
}

}  // namespace brisk::cuda
