// Storage element types and their scalar conversions. Activations are fp32 on the CPU; weights may
// be any of F32/F16/BF16.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace brisk {

enum class DType : uint8_t { F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F64 };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);  // safetensors spelling: "F32", "BF16", ...
std::optional<DType> dtype_from_name(std::string_view name);

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, NaN kept quiet (matches PyTorch's conversion).
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Reads element i of a buffer of type t as fp32 (scalar path; kernels use SIMD instead).
float load_as_f32(const void* data, DType t, size_t i);

}  // namespace brisk
