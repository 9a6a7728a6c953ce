// The uniform integer grid the calibrated methods (GPTQ, AWQ, SmoothQuant) quantize onto, and the
// layout they hand back. One convention for every method and bit width:
//
//   code in [0, 2^bits - 1] (unsigned, one per byte here; packing is the runtime format's job)
//   w ~= (code - zero) * scale            zero is an integer in code units
//
//   Asymmetric: min/max of the group, widened to include 0 (so 0 is exact, as GPTQ and AWQ do),
//               scale = (max - min) / (2^bits - 1), zero = round(-min / scale).
//   Symmetric:  absmax of the group, scale = absmax / (2^(bits-1) - 1), zero = 2^(bits-1);
//               codes then span [-2^(bits-1), 2^(bits-1) - 1] around zero: RTN never reaches the
//               most negative step, GPTQ's error feedback may.
//
// Scales are rounded to fp16 when fitted, because the runtime's 4-bit blocks store them so: codes
// chosen against an fp32 scale (GPTQ's error feedback in particular) would otherwise be decoded
// with a slightly different one.
//
// Groups are runs of group_size consecutive input columns of one output row (group_size 0: the
// whole row, i.e. per output channel).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace brisk::calib {

enum class Symmetry { Symmetric, Asymmetric };

struct QuantSpec {
  int bits = 4;
  int64_t group_size = 128;  // 0: one group per output row
  Symmetry symmetry = Symmetry::Asymmetric;

  int max_code() const { return (1 << bits) - 1; }
  int64_t group_width(int64_t cols) const { return group_size > 0 ? group_size : cols; }
  int64_t groups(int64_t cols) const { return (cols + group_width(cols) - 1) / group_width(cols); }
};

// One group's scale and zero point.
struct GridStep {
  float scale = 1;
  float zero = 0;  // integer-valued, in code units

  int code(float w, int max_code) const {
    const float q = std::nearbyint(w / scale) + zero;
    return int(std::clamp(q, 0.0f, float(max_code)));
  }
  float value(int code) const { return (float(code) - zero) * scale; }
  float round_trip(float w, int max_code) const { return value(code(w, max_code)); }
};

inline float stored_scale(float scale) { return f16_to_f32(f32_to_f16(scale)); }

// How far a grid's range is shrunk from the group's extremes, per end, in (0, 1]: clipping the
// few largest weights buys a finer step for all the others (the searches in grid_search.h).
// Symmetric grids have one absmax and use `hi` only.
struct Shrink {
  float lo = 1.0f, hi = 1.0f;
};

// The grid for the values lo..hi (the group's min and max, or -absmax..absmax for symmetric).
inline GridStep fit_grid(float lo, float hi, const QuantSpec& spec, Shrink shrink = {}) {
  GridStep g;
  const int max_code = spec.max_code();
  if (spec.symmetry == Symmetry::Symmetric) {
    const float absmax = std::max(std::fabs(lo), std::fabs(hi)) * shrink.hi;
    g.zero = float(1 << (spec.bits - 1));
    g.scale = stored_scale(absmax / float((1 << (spec.bits - 1)) - 1));
    if (!(g.scale > 0)) g.scale = 1.0f;  // an all-zero group (or below fp16's smallest step)
    return g;
  }
  lo = std::min(lo, 0.0f) * shrink.lo;
  hi = std::max(hi, 0.0f) * shrink.hi;
  if (hi - lo <= 0) return GridStep{1.0f, 0.0f};  // an all-zero group: any scale is exact
  g.scale = stored_scale((hi - lo) / float(max_code));
  if (g.scale == 0) return GridStep{1.0f, 0.0f};  // a range below fp16's smallest step
  g.zero = std::clamp(std::nearbyint(-lo / g.scale), 0.0f, float(max_code));
  return g;
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

// The grid of n values spaced `stride` apart.
inline GridStep fit_grid(const float* w, int64_t n, int64_t stride, const QuantSpec& spec, Shrink shrink = {}) {
  const auto [lo, hi] = value_range(w, n, stride);
  return fit_grid(lo, hi, spec, shrink);
}

// A quantized weight matrix W [rows = out, cols = in] in original column order.
struct QuantizedMatrix {
  int64_t rows = 0, cols = 0;
  QuantSpec spec;
  std::vector<uint8_t> codes;      // [rows, cols]
  std::vector<float> scales;       // [rows, groups]
  std::vector<float> zeros;        // [rows, groups], integer-valued
  // Group of each input column, only when columns were grouped out of order (GPTQ act-order with
  // GroupOrder::Activation); empty means column / group_size.
  std::vector<int32_t> group_index;
  std::vector<float> dequantized;  // [rows, cols]: (code - zero) * scale, what inference computes with

  int64_t groups() const { return spec.groups(cols); }
  int64_t group_of(int64_t col) const {
    return group_index.empty() ? col / spec.group_width(cols) : group_index[size_t(col)];
  }
};

// Validates a spec against a matrix width: bits 2..8, groups dividing the columns.
inline Status check_spec(const QuantSpec& spec, int64_t cols, const std::string& what) {
  if (spec.bits < 2 || spec.bits > 8)
    return make_error(what + ": --bits must be 2..8, got " + std::to_string(spec.bits));
  if (spec.group_size < 0 || (spec.group_size > 0 && cols % spec.group_size != 0))
    return make_error(what + ": group size " + std::to_string(spec.group_size) +
                      " does not divide its " + std::to_string(cols) + " input columns");
  return ok_status();
}

// Codes for w [rows, cols] on given grids [rows, groups].
inline QuantizedMatrix quantize_on_grids(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec,
                                         const std::vector<GridStep>& grids) {
  QuantizedMatrix q;
  q.rows = rows;
  q.cols = cols;
  q.spec = spec;
  const int64_t width = spec.group_width(cols), groups = spec.groups(cols);
  BRISK_CHECK(int64_t(grids.size()) == rows * groups, "quantize_on_grids: one grid per row and group");
  q.codes.resize(size_t(rows * cols));
  q.dequantized.resize(size_t(rows * cols));
  q.scales.resize(size_t(rows * groups));
  q.zeros.resize(size_t(rows * groups));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t c0 = g * width, n = std::min(width, cols - c0);
      const size_t at = size_t(r * cols + c0);
      const GridStep& step = grids[size_t(r * groups + g)];
      q.scales[size_t(r * groups + g)] = step.scale;
      q.zeros[size_t(r * groups + g)] = step.zero;
      for (int64_t c = 0; c < n; ++c) {
        const int code = step.code(w[at + size_t(c)], spec.max_code());
        q.codes[at + size_t(c)] = uint8_t(code);
        q.dequantized[at + size_t(c)] = step.value(code);
      }
    }
  return q;
}

// Round-to-nearest's grids [rows, groups] for w [rows, cols]: each group's min/max or absmax.
inline std::vector<GridStep> rtn_grids(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec) {
  const int64_t width = spec.group_width(cols), groups = spec.groups(cols);
  std::vector<GridStep> grids(size_t(rows * groups));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g)
      grids[size_t(r * groups + g)] = fit_grid(w + r * cols + g * width, std::min(width, cols - g * width), 1, spec);
  return grids;
}

// Round-to-nearest in the same layout (no search): the baseline the calibrated methods are
// measured against.
inline QuantizedMatrix quantize_rtn(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec) {
  return quantize_on_grids(w, rows, cols, spec, rtn_grids(w, rows, cols, spec));
}

}  // namespace brisk::calib
