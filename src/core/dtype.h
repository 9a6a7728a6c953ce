// Storage element types and their scalar conversions. Activations are fp32 on the CPU; weights may
// be any of F32/F16/BF16 or one of the quantized block formats (core/quant_blocks.h).
//
// Block dtypes: a tensor of logical shape [rows, cols] stores each row as ceil(cols / block)
// packed blocks (the last one zero-padded); dtype_size() is the bytes of ONE block and
// dtype_block() the values it holds (1 for plain dtypes). Use row_bytes() for row sizes.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

namespace brisk {

enum class DType : uint8_t {
  F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F64,
  F8_E4M3,  // plain fp8 (safetensors "F8_E4M3"), as compressed-tensors stores fp8 weights
  // Runtime block formats (never in files; see core/quant_blocks.h for their layouts).
  Q8,    // int8 per output channel, fp32 activations (w8)
  Q8A8,  // int8 per output channel + row sums; activations quantized per token at run time (w8a8)
  F8,    // e4m3 per output channel (fp8)
  Q4,    // 4-bit integer codes per group of 128, scale + zero point (w4, sym or asym)
  NF4,   // 4-bit NormalFloat codebook per group (QLoRA)
  LOG4,  // 4-bit sign + power-of-two codebook per group (log2)
};

size_t dtype_size(DType t);     // bytes of one element, or of one block for block dtypes
int64_t dtype_block(DType t);   // values per block: 1 for plain dtypes
bool is_block_dtype(DType t);
size_t row_bytes(DType t, int64_t cols);  // bytes of one row of `cols` values

std::string_view dtype_name(DType t);  // safetensors spelling: "F32", "BF16", ...
std::optional<DType> dtype_from_name(std::string_view name);  // plain dtypes only

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
// OCP fp8 e4m3 (bias 7, no infinities, 0x7f/0xff NaN, max 448). Encoding rounds to nearest even
// and saturates to +-448 (the convention of torch's float8_e4m3fn casts after clamping).
float e4m3_to_f32(uint8_t b);
uint8_t f32_to_e4m3(float f);

// Reads element i of a buffer of type t as fp32 (scalar path; kernels use SIMD instead). `data`
// need not be aligned to the element: it often points into a mapped file (a GGUF with
// general.alignment 1, a safetensors header of odd length).
float load_as_f32(const void* data, DType t, size_t i);

// values[0, n) written as n elements of t (F32, F16 or BF16; round to nearest even), the bytes
// a writer stores: what passes that rewrite float weights keep their source's dtype with.
std::vector<uint8_t> encode_floats(const float* values, size_t n, DType t);

}  // namespace brisk
