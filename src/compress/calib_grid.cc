#include "compress/calib_grid.h"

namespace brisk::calib {

QuantizedMatrix pack(const UnpackedMatrix& m) {
  BRISK_CHECK(m.group_index.empty(), "pack: permuted groups are not stored (GroupOrder::Static keeps column order)");
  const std::vector<int32_t> codes(m.codes.begin(), m.codes.end());
  return encode_matrix(codes.data(), m.params.data(), m.rows, m.cols, m.spec);
}

Status check_grid_spec(const QuantSpec& spec, int64_t cols, const std::string& what) {
  const QuantTraits& t = scheme_traits(spec.scheme);
  if (t.levels || t.dtype == DType::F8)
    return make_error(what + ": scheme " + std::string(quant_scheme_name(spec.scheme)) +
                      " has no integer grid (calibrated methods quantize to w4, w8 or w8a8)");
  if (spec.symmetry == Symmetry::Asymmetric && !t.has_zero)
    return make_error(what + ": scheme " + std::string(quant_scheme_name(spec.scheme)) + " is symmetric only");
  if (!t.per_channel && (spec.group <= 0 || cols % spec.group != 0))
    return make_error(what + ": group size " + std::to_string(spec.group) + " does not divide its " +
                      std::to_string(cols) + " input columns");
  return ok_status();
}

UnpackedMatrix quantize_on_grids(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec,
                                 const std::vector<GroupParams>& params) {
  const QuantTraits& t = scheme_traits(spec.scheme);
  UnpackedMatrix q;
  q.rows = rows;
  q.cols = cols;
  q.spec = spec;
  const int64_t width = group_width(spec, cols), groups = q.groups();
  BRISK_CHECK(int64_t(params.size()) == rows * groups, "quantize_on_grids: one grid per row and group");
  q.params = params;
  q.codes.resize(size_t(rows * cols));
  q.dequantized.resize(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const size_t at = size_t(r * cols + c);
      const GroupParams& p = params[size_t(r * groups + c / width)];
      const int32_t code = nearest_code(t, w[at], p);
      q.codes[at] = int8_t(code);
      q.dequantized[at] = dequantize_code(t, code, p);
    }
  return q;
}

std::vector<GroupParams> rtn_grids(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec) {
  const QuantTraits& t = scheme_traits(spec.scheme);
  const int64_t width = group_width(spec, cols), groups = groups_per_row(spec, cols);
  std::vector<GroupParams> params(size_t(rows * groups));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g)
      params[size_t(r * groups + g)] =
          choose_params(t, w + r * cols + g * width, std::min(width, cols - g * width), spec.symmetry);
  return params;
}

}  // namespace brisk::calib
