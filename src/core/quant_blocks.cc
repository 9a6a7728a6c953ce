#include "core/quant_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace brisk {

const float kNf4Levels[16] = {-1.0f,
                              -0.6961928009986877f,
                              -0.5250730514526367f,
                              -0.39491748809814453f,
                              -0.28444138169288635f,
                              -0.18477343022823334f,
                              -0.09105003625154495f,
                              0.0f,
                              0.07958029955625534f,
                              0.16093020141124725f,
                              0.24611230194568634f,
                              0.33791524171829224f,
                              0.44070982933044434f,
                              0.5626170039176941f,
                              0.7229568362236023f,
                              1.0f};
const float kLog4Levels[16] = {-1.0f,      -0.5f,     -0.25f,    -0.125f,  -0.0625f, -0.03125f,
                               -0.015625f, 0.0f,      0.0f,      0.015625f, 0.03125f, 0.0625f,
                               0.125f,     0.25f,     0.5f,      1.0f};

namespace {

int64_t blocks_in(int64_t n, int64_t block) { return (n + block - 1) / block; }

// ---- per-channel 8-bit rows (Q8, Q8A8, F8): codes are bytes, one scale per row ----

template <class Block>
void encode_bytes_row(const int32_t* codes, const GroupParams* params, int64_t n, int64_t, void* blocks) {
  auto* b = static_cast<Block*>(blocks);
  constexpr int64_t kBlock = sizeof(Block::q);
  for (int64_t i = 0; i < blocks_in(n, kBlock); ++i) {
    Block& blk = b[i];
    std::memset(&blk, 0, sizeof(Block));
    blk.scale = params[0].scale;
    int32_t sum = 0;
    for (int64_t j = 0; j < kBlock && i * kBlock + j < n; ++j) {
      const int32_t c = codes[i * kBlock + j];
      blk.q[j] = static_cast<std::remove_reference_t<decltype(blk.q[0])>>(c);
      sum += c;
    }
    if constexpr (requires { blk.sum; }) blk.sum = sum;
  }
}

template <class Block>
void decode_bytes_row(const void* blocks, int64_t n, int64_t, int32_t* codes, GroupParams* params) {
  const auto* b = static_cast<const Block*>(blocks);
  constexpr int64_t kBlock = sizeof(Block::q);
  params[0] = {n > 0 ? b[0].scale : 0.0f, 0};
  for (int64_t i = 0; i < n; ++i) codes[i] = b[i / kBlock].q[i % kBlock];
}

template <class Block, class Level>
void dequantize_bytes_row(const void* blocks, int64_t n, float* out, Level level) {
  const auto* b = static_cast<const Block*>(blocks);
  constexpr int64_t kBlock = sizeof(Block::q);
  for (int64_t i = 0; i < n; ++i) out[i] = level(b[i / kBlock].q[i % kBlock]) * b[i / kBlock].scale;
}

void dequantize_q8(const void* blocks, int64_t n, float* out) {
  dequantize_bytes_row<BlockQ8>(blocks, n, out, [](int8_t q) { return float(q); });
}
void dequantize_q8a8(const void* blocks, int64_t n, float* out) {
  dequantize_bytes_row<BlockQ8A8>(blocks, n, out, [](int8_t q) { return float(q); });
}
void dequantize_f8(const void* blocks, int64_t n, float* out) {
  dequantize_bytes_row<BlockF8>(blocks, n, out, [](uint8_t q) { return e4m3_to_f32(q); });
}

// ---- 4-bit rows (Q4, NF4, LOG4): BlockQ4, params per group of `group` values ----

constexpr int64_t kQ4Block = 128;

int nibble_at(const BlockQ4& b, int64_t j) {  // value j (0..127) of a block; layout in the header
  const int64_t chunk = j / 32, within = j % 32;
  const uint8_t byte = b.q[chunk * 16 + within % 16];
  return within < 16 ? byte & 0xf : byte >> 4;
}

template <bool kCodebook>
void encode_q4_row(const int32_t* codes, const GroupParams* params, int64_t n, int64_t group, void* blocks) {
  auto* b = static_cast<BlockQ4*>(blocks);
  BRISK_CHECK(group % kQ4Block == 0, "4-bit blocks need a group size that is a multiple of 128");
  for (int64_t i = 0; i < blocks_in(n, kQ4Block); ++i) {
    BlockQ4& blk = b[i];
    const GroupParams& p = params[i * kQ4Block / group];
    blk.scale_f16 = f32_to_f16(p.scale);
    blk.zero = uint8_t(p.zero);
    blk.reserved = 0;
    std::memset(blk.q, 0, sizeof(blk.q));
    for (int64_t j = 0; j < kQ4Block; ++j) {
      // Padding takes the code whose level minus zero is 0: the zero point (Q4) or 7 (codebooks).
      const int32_t c = i * kQ4Block + j < n ? codes[i * kQ4Block + j] : kCodebook ? 7 : p.zero;
      const int64_t chunk = j / 32, within = j % 32;
      blk.q[chunk * 16 + within % 16] |= uint8_t((c & 0xf) << (within < 16 ? 0 : 4));
    }
  }
}

void decode_q4_row(const void* blocks, int64_t n, int64_t group, int32_t* codes, GroupParams* params) {
  const auto* b = static_cast<const BlockQ4*>(blocks);
  for (int64_t i = 0; i < n; ++i) codes[i] = nibble_at(b[i / kQ4Block], i % kQ4Block);
  for (int64_t g = 0; g * group < n; ++g) {
    const BlockQ4& blk = b[g * group / kQ4Block];
    params[g] = {f16_to_f32(blk.scale_f16), blk.zero};
  }
}

template <const float* kLevels>
void dequantize_q4_row(const void* blocks, int64_t n, float* out) {
  const auto* b = static_cast<const BlockQ4*>(blocks);
  for (int64_t i = 0; i < n; ++i) {
    const BlockQ4& blk = b[i / kQ4Block];
    const int code = nibble_at(blk, i % kQ4Block);
    float level = float(code);
    if constexpr (kLevels != nullptr) level = kLevels[code];
    out[i] = (level - float(blk.zero)) * f16_to_f32(blk.scale_f16);
  }
}

constexpr const float* kNoLevels = nullptr;

// The one traits table: a row per block format.
const QuantTraits kTraits[] = {
    {DType::Q8, 256, sizeof(BlockQ8), 8, true, false, nullptr, dequantize_q8, encode_bytes_row<BlockQ8>,
     decode_bytes_row<BlockQ8>},
    {DType::Q8A8, 256, sizeof(BlockQ8A8), 8, true, false, nullptr, dequantize_q8a8,
     encode_bytes_row<BlockQ8A8>, decode_bytes_row<BlockQ8A8>},
    {DType::F8, 256, sizeof(BlockF8), 8, true, false, nullptr, dequantize_f8, encode_bytes_row<BlockF8>,
     decode_bytes_row<BlockF8>},
    {DType::Q4, kQ4Block, sizeof(BlockQ4), 4, false, true, nullptr, dequantize_q4_row<kNoLevels>,
     encode_q4_row<false>, decode_q4_row},
    {DType::NF4, kQ4Block, sizeof(BlockQ4), 4, false, false, kNf4Levels, dequantize_q4_row<kNf4Levels>,
     encode_q4_row<true>, decode_q4_row},
    {DType::LOG4, kQ4Block, sizeof(BlockQ4), 4, false, false, kLog4Levels, dequantize_q4_row<kLog4Levels>,
     encode_q4_row<true>, decode_q4_row},
};

}  // namespace

const QuantTraits* quant_traits(DType t) {
  for (const auto& r : kTraits)
    if (r.dtype == t) return &r;
  return nullptr;
}

GroupParams choose_params(const QuantTraits& t, const float* v, int64_t n, Symmetry symmetry) {
  float lo = 0.0f, hi = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, v[i]);
    hi = std::max(hi, v[i]);
  }
  return params_for_range(t, lo, hi, symmetry);
}

GroupParams params_for_range(const QuantTraits& t, float lo, float hi, Symmetry symmetry) {
  lo = std::min(lo, 0.0f);  // the range always includes 0, so 0 stays exactly representable
  hi = std::max(hi, 0.0f);
  const float absmax = std::max(-lo, hi);
  GroupParams p;
  if (symmetry == Symmetry::Asymmetric) {
    BRISK_CHECK(t.has_zero, "choose_params: format has no zero point");
    const int qmax = (1 << t.bits) - 1;
    // Scale and zero are rounded to what the block stores (fp16) before codes are chosen.
    p.scale = f16_to_f32(f32_to_f16((hi - lo) / float(qmax)));
    p.zero = p.scale > 0 ? std::clamp(int(std::nearbyint(-lo / p.scale)), 0, qmax) : 0;
    return p;
  }
  if (t.dtype == DType::F8) {
    p.scale = absmax / 448.0f;
  } else if (t.levels) {
    p.scale = f16_to_f32(f32_to_f16(absmax));
  } else if (t.bits == 4) {
    p.scale = f16_to_f32(f32_to_f16(absmax / 7.0f));
    p.zero = 8;
  } else {
    p.scale = absmax / 127.0f;
  }
  return p;
}

void decode_rows(const void* data, DType t, int64_t rows, int64_t cols, float* out) {
  const QuantTraits* traits = quant_traits(t);
  const size_t n = size_t(rows * cols);
  if (t == DType::BF16) {  // the common checkpoint dtype, widened in a loop the compiler vectorizes
    const auto* bytes = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, bytes + 2 * i, 2);
      out[i] = bf16_to_f32(h);
    }
    return;
  }
  if (!traits) {
    for (size_t i = 0; i < n; ++i) out[i] = load_as_f32(data, t, i);
    return;
  }
  const size_t stride = row_bytes(t, cols);
  for (int64_t r = 0; r < rows; ++r)
    traits->dequantize_row(static_cast<const uint8_t*>(data) + size_t(r) * stride, cols, out + r * cols);
}

std::vector<float> decode_tensor(const Tensor& t) {
  const int64_t cols = t.rank() == 2 ? t.shape[1] : t.numel(), rows = t.rank() == 2 ? t.shape[0] : 1;
  std::vector<float> values(size_t(rows * cols));
  decode_rows(t.data, t.dtype, rows, cols, values.data());
  return values;
}

void quantize_row(const QuantTraits& t, const float* x, int64_t n, int64_t group, Symmetry symmetry,
                  void* blocks) {
  if (t.per_channel) group = std::max<int64_t>(n, 1);
  std::vector<int32_t> codes(static_cast<size_t>(n));
  std::vector<GroupParams> params(size_t((n + group - 1) / group));
  for (int64_t g = 0; g * group < n; ++g) {
    const int64_t len = std::min(group, n - g * group);
    params[size_t(g)] = choose_params(t, x + g * group, len, symmetry);
    for (int64_t i = 0; i < len; ++i)
      codes[size_t(g * group + i)] = nearest_code(t, x[g * group + i], params[size_t(g)]);
  }
  t.encode_row(codes.data(), params.data(), n, group, blocks);
}

float quantize_activation_row_u8(const float* x, int64_t n, int64_t padded, uint8_t* out) {
  float absmax = 0.0f;
  for (int64_t i = 0; i < n; ++i) absmax = std::max(absmax, std::fabs(x[i]));
  const float inv = absmax > 0.0f ? 127.0f / absmax : 0.0f;
  for (int64_t i = 0; i < n; ++i) out[i] = uint8_t(int(std::nearbyint(x[i] * inv)) + 128);
  std::memset(out + n, 128, size_t(padded - n));
  return absmax / 127.0f;
}

void quantize_activation_blocks(const float* x, int64_t n, int64_t padded, int8_t* codes, float* scales) {
  for (int64_t b0 = 0; b0 < padded; b0 += kActivationBlock) {
    const int64_t len = std::clamp<int64_t>(n - b0, 0, kActivationBlock);
    float absmax = 0.0f;
    for (int64_t i = 0; i < len; ++i) absmax = std::max(absmax, std::fabs(x[b0 + i]));
    const float inv = absmax > 0.0f ? 127.0f / absmax : 0.0f;
    for (int64_t i = 0; i < len; ++i) codes[b0 + i] = int8_t(std::nearbyint(x[b0 + i] * inv));
    std::memset(codes + b0 + len, 0, size_t(kActivationBlock - len));
    scales[b0 / kActivationBlock] = absmax / 127.0f;
  }
}

namespace {

Int8Codebook make_int8_codebook(const float* levels, float per_unit) {
  Int8Codebook book{};
  for (int i = 0; i < 16; ++i) book.level[i] = int8_t(std::nearbyint(levels[i] * per_unit));
  book.unit = 1.0f / per_unit;
  return book;
}

const Int8Codebook kNf4Int8 = make_int8_codebook(kNf4Levels, 127.0f);
const Int8Codebook kLog4Int8 = make_int8_codebook(kLog4Levels, 64.0f);

}  // namespace

const Int8Codebook* int8_codebook(DType t) {
  if (t == DType::NF4) return &kNf4Int8;
  if (t == DType::LOG4) return &kLog4Int8;
  return nullptr;
}

}  // namespace brisk
