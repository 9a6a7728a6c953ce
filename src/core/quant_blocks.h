// Quantized runtime weight formats: one packed block struct per format (size fixed by a
// static_assert) and one traits row each (block size, bytes, levels, encode/decode of a row).
// Adding a format = a struct + a row + kernels + tests (GUIDE rule 3).
//
// Every format reads value i of a group as (level(code_i) - zero) * scale:
//   Q8, Q8A8  code int8 in [-127, 127], level = code, zero 0, one scale per output row
//   F8        code = e4m3 byte, level = e4m3 value, zero 0, one scale per output row
//   Q4        code in [0, 15], level = code, zero in [0, 15] (8 when symmetric), scale per group
//   NF4, LOG4 code in [0, 15], level = codebook[code] (kNf4Levels / kLog4Levels), zero 0
// A row of `cols` values is ceil(cols / block) blocks; padding values have code "level 0" (so
// they dequantize to exactly 0 and contribute nothing to dot products).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace brisk {

// Per-channel int8 (w8): 256 codes and the row's scale, repeated in every block of the row so a
// kernel needs nothing but the block stream.
struct BlockQ8 {
  float scale;
  int8_t q[256];
};
static_assert(sizeof(BlockQ8) == 260);

// Per-channel int8 for w8a8: as BlockQ8 plus the sum of the block's codes, which corrects the
// +128 offset that u8 x s8 dot products (AVX-512 VNNI vpdpbusd) need on the activations.
struct BlockQ8A8 {
  float scale;
  int32_t sum;  // sum of q[]
  int8_t q[256];
};
static_assert(sizeof(BlockQ8A8) == 264);

// Per-channel fp8 e4m3 weights: 256 e4m3 bytes and the row's scale.
struct BlockF8 {
  float scale;
  uint8_t q[256];
};
static_assert(sizeof(BlockF8) == 260);

// 128 four-bit codes with one fp16 scale and an integer zero point (Q4, NF4, LOG4). Nibble
// order, chosen so one 16-byte load widens into two vectors of 16 consecutive values: the
// block is 4 chunks of 32 values; byte j (0..15) of chunk c holds value 32c + j in its low
// nibble and value 32c + 16 + j in its high nibble.
struct BlockQ4 {
  uint16_t scale_f16;
  uint8_t zero;  // Q4: zero point in [0, 15]; NF4 / LOG4: 0
  uint8_t reserved;
  uint8_t q[64];
};
static_assert(sizeof(BlockQ4) == 68);

// The 16 levels of the 4-bit codebooks, ascending. NF4: the QLoRA NormalFloat-4 values
// (quantiles of N(0, 1) scaled to [-1, 1], with an exact zero). LOG4: 0, +-2^-6 .. +-2^0 (code
// 7 and 8 both hold 0 so the table stays 16 entries and symmetric).
extern const float kNf4Levels[16];
extern const float kLog4Levels[16];

// The quantization parameters of one group (or of one row for per-channel formats).
struct GroupParams {
  float scale = 0.0f;
  int zero = 0;
};

enum class Symmetry : uint8_t { Symmetric, Asymmetric };

struct QuantTraits {
  DType dtype;
  int64_t block;      // values per block
  size_t bytes;       // bytes per block
  int bits;           // code width
  bool per_channel;   // one scale per output row (else per group of `group` values)
  bool has_zero;      // supports Symmetry::Asymmetric (a zero point)
  const float* levels;  // 2^bits levels for codebook formats, else null
  // Scalar reference: decodes n values (one row) to fp32.
  void (*dequantize_row)(const void* blocks, int64_t n, float* out);
  // Writes codes (one per value) and the params of each group into a row of blocks; the row's
  // padding is filled with the code of level 0.
  void (*encode_row)(const int32_t* codes, const GroupParams* params, int64_t n, int64_t group,
                     void* blocks);
  // The inverse of encode_row: codes and per-group params of a row (for converting to disk).
  void (*decode_row)(const void* blocks, int64_t n, int64_t group, int32_t* codes, GroupParams* params);
};

// Null for plain dtypes.
const QuantTraits* quant_traits(DType t);

// The level a code stands for (before zero and scale). Inline, with nearest_code and
// dequantize_code: the calibrated methods' grid searches call them per weight per candidate.
inline float code_level(const QuantTraits& traits, int32_t code) {
  if (traits.levels) return traits.levels[code];
  if (traits.dtype == DType::F8) return e4m3_to_f32(uint8_t(code));
  return float(code);
}
// Round-to-nearest quantization grid, shared by RTN and by calibrated methods (GPTQ, AWQ):
// params for a group of n values (absmax for symmetric, min/max with an integer zero point for
// asymmetric), and the nearest code of a value under them.
GroupParams choose_params(const QuantTraits& traits, const float* values, int64_t n, Symmetry symmetry);
// The same params for a group whose values span lo..hi (widened to include 0). Calibrated methods
// call it with a shrunk range to clip a group's extremes.
GroupParams params_for_range(const QuantTraits& traits, float lo, float hi, Symmetry symmetry);
inline int32_t nearest_code(const QuantTraits& t, float value, const GroupParams& p) {
  if (p.scale == 0.0f) return t.levels ? 7 : p.zero;
  const float x = value / p.scale;
  if (t.dtype == DType::F8) return f32_to_e4m3(x);
  if (t.levels) {  // nearest of 16 ascending levels: first level above the midpoint
    int c = 0;
    while (c < 15 && x > 0.5f * (t.levels[c] + t.levels[c + 1])) ++c;
    return c;
  }
  if (t.bits == 4) return std::clamp(int(std::nearbyint(x)) + p.zero, 0, 15);
  return std::clamp(int(std::nearbyint(x)), -127, 127);
}
inline float dequantize_code(const QuantTraits& t, int32_t code, const GroupParams& p) {
  return (code_level(t, code) - float(p.zero)) * p.scale;
}

// Decodes `rows` rows of `cols` values stored row-major in dtype t (plain or block-quantized,
// rows padded to whole blocks as row_bytes says) to fp32 [rows, cols].
void decode_rows(const void* data, DType t, int64_t rows, int64_t cols, float* out);
// A row-major tensor (a matrix, or a vector as one row) decoded to fp32.
std::vector<float> decode_tensor(const Tensor& t);

// RTN of one row (`group` values per group; ignored for per-channel formats, where the whole
// row is one group). The row is then encoded into blocks.
void quantize_row(const QuantTraits& traits, const float* x, int64_t n, int64_t group, Symmetry symmetry,
                  void* blocks);

// w8a8 activations: one row quantized per token, symmetric int8 (code = nearest(x * 127 / absmax)),
// returned as u8 = code + 128 for u8 x s8 dot products, zero-padded (code 0 -> 128) to `padded`.
// Returns the row's scale (absmax / 127; 0 for an all-zero row).
float quantize_activation_row_u8(const float* x, int64_t n, int64_t padded, uint8_t* out);

// Weight-only formats on integer dot-product kernels (AVX-512 VNNI): each activation row is
// quantized to int8 per block of kActivationBlock values (symmetric, scale = absmax / 127, as
// llama.cpp's Q8_0), so the error follows the local magnitude rather than the row's largest
// outlier. codes is zero-padded to `padded` (a multiple of the block); scales gets one entry per
// block (0 for an all-zero block).
constexpr int64_t kActivationBlock = 32;
void quantize_activation_blocks(const float* x, int64_t n, int64_t padded, int8_t* codes, float* scales);

// The 4-bit codebooks as int8 levels for integer kernels: level(code) ~= level[code] * unit.
// LOG4 is exact (powers of two times 64); NF4 rounds each level to the nearest 1/127.
struct Int8Codebook {
  int8_t level[16];
  float unit;
};
// Null for formats without a codebook.
const Int8Codebook* int8_codebook(DType t);

}  // namespace brisk
