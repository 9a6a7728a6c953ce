#include "compress/quantize.h"

namespace brisk {

namespace {

struct SchemeRow {
  QuantScheme scheme;
  std::string_view name;
  DType dtype;
};
constexpr SchemeRow kSchemes[] = {
    {QuantScheme::W8, "w8", DType::Q8},     {QuantScheme::W4, "w4", DType::Q4},
    {QuantScheme::W8A8, "w8a8", DType::Q8A8}, {QuantScheme::FP8, "fp8", DType::F8},
    {QuantScheme::NF4, "nf4", DType::NF4},  {QuantScheme::LOG2, "log2", DType::LOG4},
};

const SchemeRow& scheme_row(QuantScheme s) {
  for (const auto& r : kSchemes)
    if (r.scheme == s) return r;
  BRISK_CHECK(false, "unknown quantization scheme");
}

QuantizedMatrix allocate(DType dtype, int64_t rows, int64_t cols) {
  QuantizedMatrix q;
  q.tensor = Tensor{nullptr, dtype, {rows, cols}};
  q.bytes = std::shared_ptr<uint8_t[]>(new uint8_t[std::max<size_t>(q.tensor.nbytes(), 1)]);
  q.tensor.data = q.bytes.get();
  return q;
}

}  // namespace

Result<QuantScheme> parse_quant_scheme(std::string_view name) {
  std::string known;
  for (const auto& r : kSchemes) {
    if (r.name == name) return r.scheme;
    known += (known.empty() ? "" : ", ") + std::string(r.name);
  }
  return make_error("unknown quantization scheme '" + std::string(name) + "' (known: " + known + ")");
}

std::string_view quant_scheme_name(QuantScheme scheme) { return scheme_row(scheme).name; }
DType runtime_dtype(QuantScheme scheme) { return scheme_row(scheme).dtype; }
const QuantTraits& scheme_traits(QuantScheme scheme) { return *quant_traits(runtime_dtype(scheme)); }

int64_t group_width(const QuantSpec& spec, int64_t cols) {
  return scheme_traits(spec.scheme).per_channel ? std::max<int64_t>(cols, 1) : spec.group;
}
int64_t groups_per_row(const QuantSpec& spec, int64_t cols) {
  const int64_t width = group_width(spec, cols);
  return (cols + width - 1) / width;
}

Status validate_quant_spec(const QuantSpec& spec) {
  const QuantTraits& t = scheme_traits(spec.scheme);
  const std::string name(quant_scheme_name(spec.scheme));
  if (spec.symmetry == Symmetry::Asymmetric && !t.has_zero)
    return make_error("--asym: scheme " + name + " has no zero point (only w4 is asymmetric; " + name +
                      " is symmetric absmax)");
  if (!t.per_channel && (spec.group <= 0 || spec.group % t.block != 0))
    return make_error("--group " + std::to_string(spec.group) + ": " + name + " needs a group size that is a multiple of " +
                      std::to_string(t.block) + " (brisk's 4-bit block)");
  return ok_status();
}

Result<QuantizedMatrix> quantize_matrix(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec,
                                        const std::string& name, ThreadPool* pool) {
  BRISK_TRY(validate_quant_spec(spec));
  const QuantTraits& t = scheme_traits(spec.scheme);
  const int64_t group = group_width(spec, cols);
  if (!t.per_channel && cols % group != 0)
    return make_error("tensor '" + name + "': group size " + std::to_string(group) + " does not divide its " +
                      std::to_string(cols) + " input features");
  QuantizedMatrix q = allocate(t.dtype, rows, cols);
  const size_t rb = row_bytes(t.dtype, cols);
  auto quantize_rows = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      quantize_row(t, w + r * cols, cols, group, spec.symmetry, q.bytes.get() + size_t(r) * rb);
  };
  parallel_for(pool, rows, quantize_rows);
  return q;
}

QuantizedMatrix encode_matrix(const int32_t* codes, const GroupParams* params, int64_t rows, int64_t cols,
                              const QuantSpec& spec) {
  const QuantTraits& t = scheme_traits(spec.scheme);
  const int64_t group = group_width(spec, cols), n_groups = groups_per_row(spec, cols);
  QuantizedMatrix q = allocate(t.dtype, rows, cols);
  const size_t rb = row_bytes(t.dtype, cols);
  for (int64_t r = 0; r < rows; ++r)
    t.encode_row(codes + r * cols, params + r * n_groups, cols, group, q.bytes.get() + size_t(r) * rb);
  return q;
}

}  // namespace brisk
