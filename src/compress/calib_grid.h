// The grid the calibrated methods (GPTQ, AWQ, SmoothQuant) quantize onto, and the unpacked form
// they hand back. It is the runtime's own grid: a QuantSpec (compress/quantize.h) names the
// scheme, and params and codes come from core/quant_blocks.h (params_for_range, nearest_code,
// dequantize_code), the functions RTN packs with. So what a method measures while it searches is
// exactly what inference will compute:
//
//   w4: code in [0, 15], w ~= (code - zero) * scale, scale stored as fp16;
//       asymmetric: zero = round(-min / scale) over the group's range widened to include 0
//       (0 is exact, as GPTQ and AWQ do); symmetric: absmax / 7 around zero = 8.
//   w8 / w8a8: one symmetric scale per output row (absmax / 127), code in [-127, 127].
//
// Groups are runs of group_width(spec, cols) consecutive input columns of one output row.
// Only the uniform integer schemes (w4, w8, w8a8) have such a grid; fp8, nf4 and log2 are RTN only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "compress/quantize.h"
#include "core/error.h"

namespace brisk::calib {

// How far a grid's range is shrunk from the group's extremes, per end, in (0, 1]: clipping the
// few largest weights buys a finer step for all the others (the searches in grid_search.h).
// Symmetric grids have one absmax and use `hi` only.
struct Shrink {
  float lo = 1.0f, hi = 1.0f;
};

// The params for the values lo..hi (the group's min and max), shrunk.
inline GroupParams fit_grid(const QuantTraits& traits, Symmetry symmetry, float lo, float hi, Shrink shrink = {}) {
  const float lo_shrink = symmetry == Symmetry::Symmetric ? shrink.hi : shrink.lo;
  return params_for_range(traits, std::min(lo, 0.0f) * lo_shrink, std::max(hi, 0.0f) * shrink.hi, symmetry);
}

inline float round_trip(const QuantTraits& traits, float w, const GroupParams& p) {
  return dequantize_code(traits, nearest_code(traits, w, p), p);
}

// The extremes of n values spaced `stride` apart.
inline std::pair<float, float> value_range(const float* w, int64_t n, int64_t stride) {
  float lo = w[0], hi = w[0];
  for (int64_t i = 1; i < n; ++i) {
    lo = std::min(lo, w[i * stride]);
    hi = std::max(hi, w[i * stride]);
  }
  return {lo, hi};
}

// A weight matrix W [rows = out, cols = in] quantized by a method, before packing into runtime
// blocks (QuantizedMatrix, compress/quantize.h): one code per value in original column order.
struct UnpackedMatrix {
  int64_t rows = 0, cols = 0;
  QuantSpec spec;
  std::vector<int8_t> codes;         // [rows, cols]: w4 0..15, w8 -127..127
  std::vector<GroupParams> params;   // [rows, groups]
  // Group of each input column, only when columns were grouped out of order (GPTQ act-order with
  // GroupOrder::Activation); empty means column / group width.
  std::vector<int32_t> group_index;
  std::vector<float> dequantized;    // [rows, cols]: what inference computes with

  int64_t groups() const { return groups_per_row(spec, cols); }
  int64_t group_of(int64_t col) const {
    return group_index.empty() ? col / group_width(spec, cols) : group_index[size_t(col)];
  }
};

// The matrix packed into the runtime's blocks. Groups must be in column order (no group_index).
QuantizedMatrix pack(const UnpackedMatrix& m);

// Checks that the spec has an integer grid and that its groups divide a matrix's `cols`.
Status check_grid_spec(const QuantSpec& spec, int64_t cols, const std::string& what);

// Codes for w [rows, cols] on given params [rows, groups].
UnpackedMatrix quantize_on_grids(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec,
                                 const std::vector<GroupParams>& params);

// Round-to-nearest's params [rows, groups] for w [rows, cols] (choose_params per group).
std::vector<GroupParams> rtn_grids(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec);

// Round-to-nearest, unpacked: what quantize_matrix packs, and the baseline the calibrated methods
// are measured against.
inline UnpackedMatrix quantize_rtn(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec) {
  return quantize_on_grids(w, rows, cols, spec, rtn_grids(w, rows, cols, spec));
}

}  // namespace brisk::calib
