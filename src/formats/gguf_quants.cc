#include "formats/gguf_quants.h"

#include <cstring>

#include "core/dtype.h"
#include "core/error.h"

namespace brisk {

namespace {

// Block structs are packed, so their fields are read through memcpy'd copies, never pointers
// into possibly unaligned file data.
template <class Block>
Block load_block(const void* src, int64_t i) {
  Block b;
  std::memcpy(&b, static_cast<const uint8_t*>(src) + i * int64_t(sizeof(Block)), sizeof(Block));
  return b;
}

void dequantize_f32(const void* src, int64_t n, float* dst) { std::memcpy(dst, src, size_t(n) * 4); }

void dequantize_f16(const void* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = load_as_f32(src, DType::F16, size_t(i));
}

void dequantize_bf16(const void* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = load_as_f32(src, DType::BF16, size_t(i));
}

void dequantize_q8_0(const void* src, int64_t blocks, float* dst) {
  for (int64_t b = 0; b < blocks; ++b) {
    const auto blk = load_block<BlockQ8_0>(src, b);
    const float d = f16_to_f32(blk.d);
    for (int i = 0; i < kQK8_0; ++i) dst[i] = float(blk.qs[i]) * d;
    dst += kQK8_0;
  }
}

void dequantize_q4_0(const void* src, int64_t blocks, float* dst) {
  constexpr int half = kQK4_0 / 2;
  for (int64_t b = 0; b < blocks; ++b) {
    const auto blk = load_block<BlockQ4_0>(src, b);
    const float d = f16_to_f32(blk.d);
    for (int i = 0; i < half; ++i) {
      dst[i] = float(int(blk.qs[i] & 0x0f) - 8) * d;
      dst[i + half] = float(int(blk.qs[i] >> 4) - 8) * d;
    }
    dst += kQK4_0;
  }
}

// Q4_K and Q5_K walk the super-block in four 64-element halves of two 32-element sub-blocks:
// the low nibbles of 32 bytes are the first sub-block, their high nibbles the second. Q5_K adds
// a fifth bit per value: sub-block 2j takes it from bit 2j of qh[l], sub-block 2j+1 from bit 2j+1.
template <class Block, bool kFifthBit>
void dequantize_k_nibbles(const void* src, int64_t blocks, float* dst) {
  for (int64_t b = 0; b < blocks; ++b) {
    const auto blk = load_block<Block>(src, b);
    const float d = f16_to_f32(blk.d), dmin = f16_to_f32(blk.dmin);
    const uint8_t* q = blk.qs;
    for (int j = 0; j < kQK_K / 64; ++j) {
      uint8_t sc0, m0, sc1, m1;
      k_quant_scale_min(blk.scales, 2 * j, &sc0, &m0);
      k_quant_scale_min(blk.scales, 2 * j + 1, &sc1, &m1);
      const float d0 = d * float(sc0), min0 = dmin * float(m0);
      const float d1 = d * float(sc1), min1 = dmin * float(m1);
      const uint8_t bit0 = uint8_t(1u << (2 * j)), bit1 = uint8_t(1u << (2 * j + 1));
      auto high = [&](int l, uint8_t bit) -> int {
        if constexpr (kFifthBit) return blk.qh[l] & bit ? 16 : 0;
        return 0;
      };
      for (int l = 0; l < 32; ++l) dst[l] = d0 * float((q[l] & 0x0f) + high(l, bit0)) - min0;
      for (int l = 0; l < 32; ++l) dst[l + 32] = d1 * float((q[l] >> 4) + high(l, bit1)) - min1;
      q += 32;
      dst += 64;
    }
  }
}

void dequantize_q4_k(const void* src, int64_t blocks, float* dst) {
  dequantize_k_nibbles<BlockQ4_K, false>(src, blocks, dst);
}

void dequantize_q5_k(const void* src, int64_t blocks, float* dst) {
  dequantize_k_nibbles<BlockQ5_K, true>(src, blocks, dst);
}

// Q6_K walks two 128-element halves; in each, 64 ql bytes and 32 qh bytes hold four runs of 32
// quants (ql low/high nibbles of bytes 0..31 and 32..63, qh bit pairs 0-1, 2-3, 4-5, 6-7).
void dequantize_q6_k(const void* src, int64_t blocks, float* dst) {
  for (int64_t b = 0; b < blocks; ++b) {
    const auto blk = load_block<BlockQ6_K>(src, b);
    const float d = f16_to_f32(blk.d);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = blk.ql + 64 * half;
      const uint8_t* qh = blk.qh + 32 * half;
      const int8_t* sc = blk.scales + 8 * half;
      for (int l = 0; l < 32; ++l) {
        const int s = l / 16;  // each scale covers 16 consecutive elements
        const int q0 = int((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q1 = int((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q2 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q3 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        dst[l] = d * float(sc[s + 0]) * float(q0);
        dst[l + 32] = d * float(sc[s + 2]) * float(q1);
        dst[l + 64] = d * float(sc[s + 4]) * float(q2);
        dst[l + 96] = d * float(sc[s + 6]) * float(q3);
      }
      dst += 128;
    }
  }
}

// Every type a GGUF file may name, so sizes can be checked for all of them; `dequantize` is set
// for the formats brisk decodes. Sizes from ggml-common.h's block definitions.
constexpr GgmlTypeTraits kTraits[] = {
    {GgmlType::F32, "F32", 1, 4, dequantize_f32, gguf_encode::f32},
    {GgmlType::F16, "F16", 1, 2, dequantize_f16, gguf_encode::f16},
    {GgmlType::BF16, "BF16", 1, 2, dequantize_bf16, gguf_encode::bf16},
    {GgmlType::Q8_0, "Q8_0", kQK8_0, sizeof(BlockQ8_0), dequantize_q8_0, gguf_encode::q8_0},
    {GgmlType::Q4_0, "Q4_0", kQK4_0, sizeof(BlockQ4_0), dequantize_q4_0, gguf_encode::q4_0},
    {GgmlType::Q4_K, "Q4_K", kQK_K, sizeof(BlockQ4_K), dequantize_q4_k, gguf_encode::q4_k},
    {GgmlType::Q5_K, "Q5_K", kQK_K, sizeof(BlockQ5_K), dequantize_q5_k, nullptr},
    {GgmlType::Q6_K, "Q6_K", kQK_K, sizeof(BlockQ6_K), dequantize_q6_k, gguf_encode::q6_k},
    {GgmlType::Q4_1, "Q4_1", 32, 20, nullptr, nullptr},
    {GgmlType::Q5_0, "Q5_0", 32, 22, nullptr, nullptr},
    {GgmlType::Q5_1, "Q5_1", 32, 24, nullptr, nullptr},
    {GgmlType::Q8_1, "Q8_1", 32, 36, nullptr, nullptr},
    {GgmlType::Q2_K, "Q2_K", kQK_K, 84, nullptr, nullptr},
    {GgmlType::Q3_K, "Q3_K", kQK_K, 110, nullptr, nullptr},
    {GgmlType::Q8_K, "Q8_K", kQK_K, 292, nullptr, nullptr},
    {GgmlType::I8, "I8", 1, 1, nullptr, nullptr},
    {GgmlType::I16, "I16", 1, 2, nullptr, nullptr},
    {GgmlType::I32, "I32", 1, 4, nullptr, nullptr},
    {GgmlType::I64, "I64", 1, 8, nullptr, nullptr},
    {GgmlType::F64, "F64", 1, 8, nullptr, nullptr},
};

}  // namespace

void k_quant_scale_min(const uint8_t* q, int j, uint8_t* scale, uint8_t* min) {
  // Sub-blocks 0..3 keep their 6 bits in the low bits of bytes 0..3 (scales) and 4..7 (mins);
  // 4..7 keep their low 4 bits in the nibbles of bytes 8..11 and their top 2 bits in the spare
  // top bits of bytes 0..7.
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = uint8_t((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
    *min = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

const GgmlTypeTraits* ggml_type_traits(uint32_t type) {
  for (const auto& row : kTraits)
    if (uint32_t(row.type) == type) return &row;
  return nullptr;
}

const GgmlTypeTraits& ggml_type_traits(GgmlType type) {
  const GgmlTypeTraits* row = ggml_type_traits(uint32_t(type));
  BRISK_CHECK(row != nullptr, "ggml type missing from the traits table");
  return *row;
}

}  // namespace brisk
