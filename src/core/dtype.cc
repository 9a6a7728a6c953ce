#include "core/dtype.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/quant_blocks.h"

namespace brisk {

namespace {
struct DTypeRow {
  DType type;
  std::string_view name;
  size_t size;
};
constexpr DTypeRow kRows[] = {
    {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4}, {DType::I16, "I16", 2},
    {DType::I8, "I8", 1},   {DType::U8, "U8", 1},   {DType::BOOL, "BOOL", 1},
    {DType::F64, "F64", 8}, {DType::F8_E4M3, "F8_E4M3", 1},
};
// Block dtypes: their sizes come from the traits table (core/quant_blocks.cc); names only here.
struct BlockName {
  DType type;
  std::string_view name;
};
constexpr BlockName kBlockNames[] = {{DType::Q8, "Q8"},   {DType::Q8A8, "Q8A8"}, {DType::F8, "F8"},
                                     {DType::Q4, "Q4"},   {DType::NF4, "NF4"},   {DType::LOG4, "LOG4"}};
const DTypeRow& row(DType t) {
  for (const auto& r : kRows)
    if (r.type == t) return r;
  BRISK_CHECK(false, "unknown dtype");
}
}  // namespace

size_t dtype_size(DType t) {
  if (const QuantTraits* q = quant_traits(t)) return q->bytes;
  return row(t).size;
}
int64_t dtype_block(DType t) {
  if (const QuantTraits* q = quant_traits(t)) return q->block;
  return 1;
}
bool is_block_dtype(DType t) { return quant_traits(t) != nullptr; }
size_t row_bytes(DType t, int64_t cols) {
  const int64_t block = dtype_block(t);
  return size_t((cols + block - 1) / block) * dtype_size(t);
}
std::string_view dtype_name(DType t) {
  for (const auto& b : kBlockNames)
    if (b.type == t) return b.name;
  return row(t).name;
}
std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& r : kRows)
    if (r.name == name) return r.type;
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      bits = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  uint16_t sign = uint16_t((bits >> 16) & 0x8000);
  uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00;  // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00;  // overflow to inf (>= 65520 rounds up)
  if (abs < 0x38800000u) {                       // subnormal or zero in f16
    float a;
    std::memcpy(&a, &abs, 4);
    // 2^-24 is the f16 subnormal step; nearbyint rounds half to even.
    return sign | uint16_t(std::nearbyint(a * 16777216.0f));
  }
  uint32_t mant_round = abs + 0xfffu + ((abs >> 13) & 1u);
  return sign | uint16_t((mant_round - (112u << 23)) >> 13);
}

float e4m3_to_f32(uint8_t b) {
  const int exp = (b >> 3) & 0xf, mant = b & 7;
  const float sign = (b & 0x80) ? -1.0f : 1.0f;
  if (exp == 15 && mant == 7) return std::numeric_limits<float>::quiet_NaN();
  if (exp == 0) return sign * std::ldexp(float(mant), -9);  // subnormal: mant * 2^-3 * 2^-6
  return sign * std::ldexp(float(8 + mant), exp - 10);       // 1.mmm * 2^(exp - 7)
}

uint8_t f32_to_e4m3(float f) {
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  if (std::isnan(f)) return 0x7f;
  const float a = std::min(std::fabs(f), 448.0f);
  if (a < std::ldexp(1.0f, -6)) {  // subnormal range: multiples of 2^-9, ties to even
    return sign | uint8_t(std::nearbyint(a * 512.0f));  // 8 * 2^-9 = 2^-6 rolls into exponent 1
  }
  int e;
  std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1): the e4m3 exponent is e - 1
  const float step = std::ldexp(1.0f, e - 1 - 3);
  const float q = std::nearbyint(a / step) * step;  // may round up into the next binade
  int qe;
  const float qm = std::frexp(q, &qe);
  const int exp = qe - 1 + 7, mant = int(qm * 16.0f) - 8;
  return sign | uint8_t(exp << 3 | mant);
}

namespace {

// Element i of an array of T that may start at any address (memcpy compiles to one plain load).
template <class T>
T load_unaligned(const void* data, size_t i) {
  T value;
  std::memcpy(&value, static_cast<const uint8_t*>(data) + i * sizeof(T), sizeof(T));
  return value;
}

}  // namespace

float load_as_f32(const void* data, DType t, size_t i) {
  switch (t) {
    case DType::F32: return load_unaligned<float>(data, i);
    case DType::F16: return f16_to_f32(load_unaligned<uint16_t>(data, i));
    case DType::BF16: return bf16_to_f32(load_unaligned<uint16_t>(data, i));
    case DType::F64: return float(load_unaligned<double>(data, i));
    case DType::I32: return float(load_unaligned<int32_t>(data, i));
    case DType::I64: return float(load_unaligned<int64_t>(data, i));
    case DType::F8_E4M3: return e4m3_to_f32(static_cast<const uint8_t*>(data)[i]);
    default: BRISK_CHECK(false, "load_as_f32: unsupported dtype " + std::string(dtype_name(t)));
  }
}

std::vector<uint8_t> encode_floats(const float* values, size_t n, DType t) {
  BRISK_CHECK(t == DType::F32 || t == DType::F16 || t == DType::BF16,
              "encode_floats: " + std::string(dtype_name(t)) + " is not F32, F16 or BF16");
  std::vector<uint8_t> bytes(n * dtype_size(t));
  if (t == DType::F32) {
    if (n) std::memcpy(bytes.data(), values, n * 4);
    return bytes;
  }
  for (size_t i = 0; i < n; ++i) {
    const uint16_t h = t == DType::BF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
    std::memcpy(bytes.data() + 2 * i, &h, 2);
  }
  return bytes;
}

}  // namespace brisk
