// ggml's tensor element types as GGUF files store them: plain floats and block-quantized
// formats. Each block format is a packed struct whose size is checked against the ggml layout
// (ggml-common.h), plus one row of the traits table (GUIDE rule 3). Dequantization here is the
// scalar reference; native quantized kernels build on the same structs. Quantization (brisk
// export) is brisk's own: round-to-nearest for Q8_0/Q4_0 (ggml's reference formulas), a small
// scale search with a least-squares refit for the K-quants (gguf_quantize.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace brisk {

// The numeric values are ggml's `enum ggml_type` and appear as-is in GGUF tensor infos.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

constexpr int kQK4_0 = 32;  // elements per Q4_0 block
constexpr int kQK8_0 = 32;  // elements per Q8_0 block
constexpr int kQK_K = 256;  // elements per K-quant super-block
constexpr int kKScaleBytes = 12;  // 8 six-bit scales + 8 six-bit mins of Q4_K/Q5_K

// Half-precision fields are raw IEEE fp16 bits (little-endian, as on disk).
#pragma pack(push, 1)
struct BlockQ8_0 {
  uint16_t d;           // scale
  int8_t qs[kQK8_0];    // value = qs[i] * d
};
struct BlockQ4_0 {
  uint16_t d;              // scale
  uint8_t qs[kQK4_0 / 2];  // element i in the low nibble of qs[i], element i+16 in the high
};                         // value = (nibble - 8) * d
struct BlockQ4_K {
  uint16_t d;                     // super-scale of the 6-bit scales
  uint16_t dmin;                  // super-scale of the 6-bit mins
  uint8_t scales[kKScaleBytes];   // 8 (scale, min) pairs, one per 32 elements, 6 bits each
  uint8_t qs[kQK_K / 2];          // 4-bit quants; value = d*scale*q - dmin*min
};
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];   // as Q4_K
  uint8_t qh[kQK_K / 8];          // fifth bit of each quant
  uint8_t qs[kQK_K / 2];          // low 4 bits
};
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];          // low 4 bits
  uint8_t qh[kQK_K / 4];          // high 2 bits
  int8_t scales[kQK_K / 16];      // one 8-bit scale per 16 elements
  uint16_t d;                     // super-scale; value = d * scale * (q - 32)
};
#pragma pack(pop)
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);

// Converts `blocks` consecutive blocks (blocks * block_elems elements) to fp32.
using DequantizeFn = void (*)(const void* src, int64_t blocks, float* dst);
// The inverse: blocks * block_elems fp32 values to `blocks` blocks (brisk export's writer).
using QuantizeFn = void (*)(const float* src, int64_t blocks, void* dst);

struct GgmlTypeTraits {
  GgmlType type;
  const char* name;         // ggml's spelling: "Q4_K", "F16"
  int64_t block_elems;      // 1 for plain types
  int64_t block_bytes;
  DequantizeFn dequantize;  // nullptr: the layout is known (sizes check) but brisk cannot decode it
  QuantizeFn quantize;      // nullptr: brisk does not write it
};

// nullptr for a type value brisk does not know.
const GgmlTypeTraits* ggml_type_traits(uint32_t type);
const GgmlTypeTraits& ggml_type_traits(GgmlType type);

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block.
void k_quant_scale_min(const uint8_t* scales, int j, uint8_t* scale, uint8_t* min);

// The writers (gguf_quantize.cc), one per row of the traits table that has `quantize`.
namespace gguf_encode {
void f32(const float* src, int64_t n, void* dst);
void f16(const float* src, int64_t n, void* dst);
void bf16(const float* src, int64_t n, void* dst);
void q8_0(const float* src, int64_t blocks, void* dst);
void q4_0(const float* src, int64_t blocks, void* dst);
void q4_k(const float* src, int64_t blocks, void* dst);
void q6_k(const float* src, int64_t blocks, void* dst);
}  // namespace gguf_encode

}  // namespace brisk
