// Element types of the paged KV cache (--kv-dtype) and the scalar conversion of one head row.
// I8 and F8 rows carry one fp32 scale each (absmax of the row / the largest code), so a row of
// small values keeps its precision: value = code * scale. F32 and BF16 rows need no scale.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace brisk {

enum class KvDtype : uint8_t {
  F32,
  BF16,  // round to nearest even
  I8,    // symmetric int8 codes in [-127, 127], scale = absmax / 127
  F8,    // e4m3 codes (largest finite 448), scale = absmax / 448
};

std::string_view kv_dtype_name(KvDtype t);  // "f32", "bf16", "int8", "fp8" (the flag's spelling)
std::optional<KvDtype> kv_dtype_from_name(std::string_view name);
size_t kv_element_bytes(KvDtype t);
inline bool kv_has_scales(KvDtype t) { return t == KvDtype::I8 || t == KvDtype::F8; }
// The largest code magnitude of a scaled dtype (127 or 448).
float kv_code_max(KvDtype t);

// Writes the n values of x to dst (n elements of t) and returns the row's scale (1 for F32/BF16).
// A row holding NaN or infinity gets codes 0 and a non-finite scale, so it reads back as NaN
// instead of silently turning into zeros.
float kv_quantize_row(const float* x, int64_t n, KvDtype t, void* dst);
// out[i] = element i of src (n elements of t) * scale.
void kv_dequantize_row(const void* src, int64_t n, KvDtype t, float scale, float* out);

}  // namespace brisk
