// KV cache element types on the device (see core/kv_dtype.h): the storage type of each KvDtype
// and its conversions, written with the same expressions as the host ones so that a pool
// stored here reads back as ref::attention reads it.
#pragma once

#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace brisk::cuda {

// Storage types: float (F32), uint16_t (BF16 bits), int8_t (I8 codes), uint8_t (F8 e4m3 bits).
template <class T>
struct KvElement;

template <>
struct KvElement<float> {
  static constexpr bool kScaled = false;
  __device__ static float load(float x) { return x; }
  __device__ static float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
  __device__ static float store(float f) { return f; }
};

template <>
struct KvElement<uint16_t> {
  static constexpr bool kScaled = false;
  __device__ static float load(uint16_t h) { return __uint_as_float(uint32_t(h) << 16); }
  __device__ static float4 load4(const uint16_t* p) {
    const uint2 w = *reinterpret_cast<const uint2*>(p);  // 4 bf16 values, element 0 in the low half
    return make_float4(__uint_as_float(w.x << 16), __uint_as_float(w.x & 0xffff0000u),
                       __uint_as_float(w.y << 16), __uint_as_float(w.y & 0xffff0000u));
  }
  // Round to nearest even, NaN kept quiet: core/dtype.h's f32_to_bf16.
  __device__ static uint16_t store(float f) {
    uint32_t bits = __float_as_uint(f);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return uint16_t(bits >> 16);
  }
};

template <>
struct KvElement<int8_t> {
  static constexpr bool kScaled = true;
  static constexpr float kCodeMax = 127.0f;
  __device__ static float load(int8_t c) { return float(c); }
  __device__ static float4 load4(const int8_t* p) {
    const char4 c = *reinterpret_cast<const char4*>(p);
    return make_float4(float(c.x), float(c.y), float(c.z), float(c.w));
  }
  __device__ static int8_t encode(float y) { return int8_t(fminf(fmaxf(rintf(y), -127.0f), 127.0f)); }
};

template <>
struct KvElement<uint8_t> {
  static constexpr bool kScaled = true;
  static constexpr float kCodeMax = 448.0f;
  __device__ static float load(uint8_t b) {
    return __half2float(__half(__nv_cvt_fp8_to_halfraw(__nv_fp8_storage_t(b), __NV_E4M3)));
  }
  __device__ static float4 load4(const uint8_t* p) {
    const uint32_t w = *reinterpret_cast<const uint32_t*>(p);
    return make_float4(load(uint8_t(w)), load(uint8_t(w >> 8)), load(uint8_t(w >> 16)), load(uint8_t(w >> 24)));
  }
  // Round to nearest even, saturating at +-448: core/dtype.h's f32_to_e4m3.
  __device__ static uint8_t encode(float y) { return uint8_t(__nv_cvt_float_to_fp8(y, __NV_SATFINITE, __NV_E4M3)); }
};

}  // namespace brisk::cuda
