#include "core/kv_dtype.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"

namespace brisk {

std::string_view kv_dtype_name(KvDtype t) {
  switch (t) {
    case KvDtype::F32: return "f32";
    case KvDtype::BF16: return "bf16";
    case KvDtype::I8: return "int8";
    case KvDtype::F8: return "fp8";
  }
  return "?";
}

std::optional<KvDtype> kv_dtype_from_name(std::string_view name) {
  for (KvDtype t : {KvDtype::F32, KvDtype::BF16, KvDtype::I8, KvDtype::F8})
    if (name == kv_dtype_name(t)) return t;
  return std::nullopt;
}

size_t kv_element_bytes(KvDtype t) {
  switch (t) {
    case KvDtype::F32: return 4;
    case KvDtype::BF16: return 2;
    case KvDtype::I8:
    case KvDtype::F8: return 1;
  }
  return 0;
}

float kv_code_max(KvDtype t) { return t == KvDtype::F8 ? 448.0f : 127.0f; }

float kv_quantize_row(const float* x, int64_t n, KvDtype t, void* dst) {
  switch (t) {
    case KvDtype::F32:
      std::copy(x, x + n, static_cast<float*>(dst));
      return 1.0f;
    case KvDtype::BF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(x[i]);
      return 1.0f;
    case KvDtype::I8:
    case KvDtype::F8: break;
  }
  float absmax = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (!(a <= absmax)) absmax = a;  // NaN sticks
  }
  auto* codes = static_cast<uint8_t*>(dst);
  if (!std::isfinite(absmax)) {
    std::fill(codes, codes + n, uint8_t(0));
    return absmax;
  }
  // The same expressions as the CUDA store (kv_store.cu), so both write the same codes.
  const float code_max = kv_code_max(t);
  const float inv = absmax > 0.0f ? code_max / absmax : 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float y = x[i] * inv;
    codes[i] = t == KvDtype::I8 ? uint8_t(int8_t(std::clamp(std::nearbyint(y), -127.0f, 127.0f)))
                                : f32_to_e4m3(y);
  }
  return absmax / code_max;
}

void kv_dequantize_row(const void* src, int64_t n, KvDtype t, float scale, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    switch (t) {
      case KvDtype::F32: out[i] = static_cast<const float*>(src)[i] * scale; break;
      case KvDtype::BF16: out[i] = bf16_to_f32(static_cast<const uint16_t*>(src)[i]) * scale; break;
      case KvDtype::I8: out[i] = float(static_cast<const int8_t*>(src)[i]) * scale; break;
      case KvDtype::F8: out[i] = e4m3_to_f32(static_cast<const uint8_t*>(src)[i]) * scale; break;
    }
  }
}

}  // namespace brisk
