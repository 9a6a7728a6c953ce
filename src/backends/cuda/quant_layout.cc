#include "backends/cuda/quant_layout.h"

#include <cstring>
#include <string>

#include "core/error.h"
#include "core/quant_blocks.h"

namespace brisk::cuda {

namespace {

template <class Block>
void repack_bytes(const uint8_t* src, int64_t n, const QuantDeviceLayout& l, uint8_t* out) {
  constexpr int64_t kBlock = sizeof(Block::q);
  const int64_t blocks = l.padded_k / kBlock;
  auto* scales = reinterpret_cast<float*>(out + l.params_offset);
  for (int64_t r = 0; r < n; ++r) {
    const auto* row = reinterpret_cast<const Block*>(src + size_t(r * blocks) * sizeof(Block));
    for (int64_t b = 0; b < blocks; ++b)
      std::memcpy(out + size_t(r * l.code_row_bytes + b * kBlock), row[b].q, kBlock);
    scales[r] = row[0].scale;
  }
}

void repack_q4(const uint8_t* src, int64_t n, const QuantDeviceLayout& l, uint8_t* out) {
  auto* params = reinterpret_cast<uint32_t*>(out + l.params_offset);
  for (int64_t r = 0; r < n; ++r) {
    const auto* row = reinterpret_cast<const BlockQ4*>(src + size_t(r * l.groups) * sizeof(BlockQ4));
    for (int64_t g = 0; g < l.groups; ++g) {
      std::memcpy(out + size_t(r * l.code_row_bytes + g * int64_t(sizeof(row[g].q))), row[g].q, sizeof(row[g].q));
      const uint32_t biased_zero = f32_to_f16(1024.0f + float(row[g].zero));
      params[r * l.groups + g] = uint32_t(row[g].scale_f16) | (biased_zero << 16);
    }
  }
}

}  // namespace

QuantDeviceLayout quant_device_layout(DType dtype, int64_t n, int64_t k) {
  const QuantTraits* t = quant_traits(dtype);
  BRISK_CHECK(t != nullptr, "quant_device_layout: " + std::string(dtype_name(dtype)) + " is not a block dtype");
  QuantDeviceLayout l;
  l.bits = t->bits;
  l.padded_k = (k + t->block - 1) / t->block * t->block;
  l.code_row_bytes = l.bits == 8 ? l.padded_k : l.padded_k / 2;
  l.groups = l.bits == 8 ? 1 : l.padded_k / kQ4GroupValues;
  l.params_offset = size_t(n * l.code_row_bytes);
  l.bytes = l.params_offset + size_t(n * l.groups) * sizeof(uint32_t);
  return l;
}

QuantDeviceView quant_device_view(const Tensor& w) {
  const QuantDeviceLayout l = quant_device_layout(w.dtype, w.dim(0), w.dim(1));
  const auto* base = static_cast<const uint8_t*>(w.data);
  return {base, reinterpret_cast<const uint32_t*>(base + l.params_offset), l.code_row_bytes, int(l.groups),
          int(l.padded_k), w.dim(0)};
}

void repack_for_device(const Tensor& host, uint8_t* out) {
  BRISK_CHECK(host.rank() == 2, "repack_for_device: a quantized tensor must be a matrix, got " +
                                    shape_string(host.shape));
  const int64_t n = host.dim(0), k = host.dim(1);
  const QuantDeviceLayout l = quant_device_layout(host.dtype, n, k);
  const auto* src = static_cast<const uint8_t*>(host.data);
  switch (host.dtype) {
    case DType::Q8: return repack_bytes<BlockQ8>(src, n, l, out);
    case DType::Q8A8: return repack_bytes<BlockQ8A8>(src, n, l, out);
    case DType::F8: return repack_bytes<BlockF8>(src, n, l, out);
    default: return repack_q4(src, n, l, out);  // Q4, NF4, LOG4 share BlockQ4
  }
}

float repacked_value(DType dtype, const uint8_t* packed, int64_t n, int64_t k, int64_t row, int64_t col) {
  const QuantDeviceLayout l = quant_device_layout(dtype, n, k);
  const QuantTraits& t = *quant_traits(dtype);
  const uint8_t* codes = packed + size_t(row * l.code_row_bytes);
  if (l.bits == 8) {
    float scale;
    std::memcpy(&scale, packed + l.params_offset + size_t(row) * sizeof(float), sizeof(float));
    const uint8_t byte = codes[col];
    const float level = dtype == DType::F8 ? e4m3_to_f32(byte) : float(int8_t(byte));
    return level * scale;
  }
  uint32_t word;
  std::memcpy(&word, packed + l.params_offset + size_t(row * l.groups + col / kQ4GroupValues) * sizeof(uint32_t),
              sizeof(uint32_t));
  const int64_t chunk = col / 32, within = col % 32;
  const uint8_t byte = codes[chunk * 16 + within % 16];
  const int code = within < 16 ? byte & 0xf : byte >> 4;
  const float level = t.levels ? t.levels[code] : float(code);
  const float zero = f16_to_f32(uint16_t(word >> 16)) - 1024.0f;
  return (level - zero) * f16_to_f32(uint16_t(word & 0xffff));
}

}  // namespace brisk::cuda
