#include "export/onnx_matrices.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/quant_blocks.h"

namespace brisk {

namespace {

using onnx::ElementType;

constexpr int64_t kStoredQ4Group = 128;  // BlockQ4's values per scale

// A matrix as integer codes [rows, cols] and per-row, per-group params.
struct MatrixCodes {
  int64_t rows = 0, cols = 0, group = 0;
  std::vector<int32_t> codes;
  std::vector<GroupParams> params;  // [rows, groups per row]
  int64_t groups_per_row() const { return (cols + group - 1) / group; }
};

// The codes of `w` in `target`'s grid: a matrix already stored in it keeps its codes; a float one
// is quantized by round-to-nearest (brisk's RTN: symmetric, `group` values per scale).
MatrixCodes matrix_codes(const Tensor& w, DType target, int64_t group) {
  const QuantTraits& traits = *quant_traits(target);
  MatrixCodes m;
  m.rows = w.dim(0);
  m.cols = w.dim(1);
  const bool stored = w.dtype == target || (target == DType::Q8 && w.dtype == DType::Q8A8);
  m.group = traits.per_channel ? m.cols : stored ? kStoredQ4Group : group;
  m.codes.resize(size_t(m.rows * m.cols));
  m.params.resize(size_t(m.rows * m.groups_per_row()));
  if (stored) {
    const QuantTraits& own = *quant_traits(w.dtype);
    const size_t bytes = row_bytes(w.dtype, m.cols);
    for (int64_t r = 0; r < m.rows; ++r)
      own.decode_row(static_cast<const uint8_t*>(w.data) + size_t(r) * bytes, m.cols, m.group,
                     m.codes.data() + r * m.cols, m.params.data() + r * m.groups_per_row());
    return m;
  }
  const std::vector<float> values = decode_tensor(w);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t g = 0; g < m.groups_per_row(); ++g) {
      const int64_t begin = r * m.cols + g * m.group, len = std::min(m.group, m.cols - g * m.group);
      GroupParams& p = m.params[size_t(r * m.groups_per_row() + g)];
      p = choose_params(traits, values.data() + begin, len, Symmetry::Symmetric);
      for (int64_t i = 0; i < len; ++i) m.codes[size_t(begin + i)] = nearest_code(traits, values[size_t(begin + i)], p);
    }
  return m;
}

bool is_float(DType t) { return !is_block_dtype(t) && t != DType::F8_E4M3; }

std::vector<uint8_t> as_f16_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> bytes(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t h = f32_to_f16(v[i]);
    std::memcpy(bytes.data() + 2 * i, &h, 2);
  }
  return bytes;
}

}  // namespace

std::vector<float> transposed(const std::vector<float>& v, int64_t rows, int64_t cols) {
  std::vector<float> t(v.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[size_t(c * rows + r)] = v[size_t(r * cols + c)];
  return t;
}

Result<OnnxMatrixType> parse_onnx_matrix_type(std::string_view name) {
  for (OnnxMatrixType t : {OnnxMatrixType::Auto, OnnxMatrixType::F32, OnnxMatrixType::F16, OnnxMatrixType::Int8,
                           OnnxMatrixType::Int4})
    if (name == onnx_matrix_type_name(t)) return t;
  return make_error("ONNX export --dtype '" + std::string(name) + "' (choose auto, fp32, fp16, int8 or int4)");
}

std::string_view onnx_matrix_type_name(OnnxMatrixType type) {
  switch (type) {
    case OnnxMatrixType::Auto: return "auto";
    case OnnxMatrixType::F32: return "fp32";
    case OnnxMatrixType::F16: return "fp16";
    case OnnxMatrixType::Int8: return "int8";
    case OnnxMatrixType::Int4: return "int4";
  }
  return "?";
}

std::string onnx_file_name(const std::map<std::string, int64_t>& matrices_by_type) {
  auto has = [&](OnnxMatrixType t) { return matrices_by_type.count(std::string(onnx_matrix_type_name(t))) != 0; };
  if (has(OnnxMatrixType::Int4)) return "model_q4.onnx";
  if (has(OnnxMatrixType::Int8)) return "model_quantized.onnx";
  if (has(OnnxMatrixType::F16)) return "model_fp16.onnx";
  return "model.onnx";
}

Result<OnnxMatrixType> OnnxMatrixWriter::form_of(const Tensor& w, const std::string& source_name) const {
  const std::string stored(dtype_name(w.dtype));
  switch (type_) {
    case OnnxMatrixType::Auto:
      if (w.dtype == DType::Q8 || w.dtype == DType::Q8A8) return OnnxMatrixType::Int8;
      if (w.dtype == DType::Q4) return OnnxMatrixType::Int4;
      return OnnxMatrixType::F32;
    case OnnxMatrixType::F32:
    case OnnxMatrixType::F16:
      return type_;
    case OnnxMatrixType::Int8:
      if (is_float(w.dtype) || w.dtype == DType::Q8 || w.dtype == DType::Q8A8) return type_;
      break;
    case OnnxMatrixType::Int4:
      if (is_float(w.dtype) || w.dtype == DType::Q4) return type_;
      break;
  }
  return make_error("ONNX export --dtype " + std::string(onnx_matrix_type_name(type_)) + ": " + source_name + " is stored as " +
                    stored + ", which that form cannot hold without quantizing it a second time; export with --dtype "
                    "auto or fp32, or quantize the source model to the matching scheme (w8 for int8, w4 for int4)");
}

std::string OnnxMatrixWriter::multiply(const std::string& x, const Tensor& w, const std::string& source_name,
                                       const std::string& name) {
  const OnnxMatrixType form = form_of(w, source_name).value();
  ++counts_[std::string(onnx_matrix_type_name(form))];
  if (form == OnnxMatrixType::Int8) return int8_product(x, w, name);
  if (form == OnnxMatrixType::Int4) return int4_product(x, w, name);
  const int64_t rows = w.dim(0), cols = w.dim(1);
  const std::vector<float> t = transposed(decode_tensor(w), rows, cols);
  if (form == OnnxMatrixType::F16) {
    graph_.add_initializer(name, ElementType::Float16, {cols, rows}, as_f16_bytes(t));
    return graph_.op("MatMul", {x, graph_.op("Cast", {name}, {{"to", int64_t(ElementType::Float)}})});
  }
  graph_.add_floats(name, {cols, rows}, t);
  return graph_.op("MatMul", {x, name});
}

std::string OnnxMatrixWriter::float_table(const std::string& name, const Tensor& t) {
  const std::vector<float> values = decode_tensor(t);
  if (type_ != OnnxMatrixType::F16) {
    graph_.add_floats(name, t.shape, values);
    return name;
  }
  graph_.add_initializer(name, ElementType::Float16, t.shape, as_f16_bytes(values));
  return graph_.op("Cast", {name}, {{"to", int64_t(ElementType::Float)}});
}

// DequantizeLinear(codes [in, out] int8, scale [out], axis 1) -> MatMul.
std::string OnnxMatrixWriter::int8_product(const std::string& x, const Tensor& w, const std::string& name) {
  const MatrixCodes m = matrix_codes(w, DType::Q8, 0);
  std::vector<uint8_t> codes(size_t(m.rows * m.cols));
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) codes[size_t(c * m.rows + r)] = uint8_t(int8_t(m.codes[size_t(r * m.cols + c)]));
  std::vector<float> scales(size_t(m.rows));
  for (int64_t r = 0; r < m.rows; ++r) scales[size_t(r)] = m.params[size_t(r)].scale;
  graph_.add_initializer(name, ElementType::Int8, {m.cols, m.rows}, std::move(codes));
  graph_.add_floats(name + "_scale", {m.rows}, scales);
  graph_.add_initializer(name + "_zero", ElementType::Int8, {m.rows}, std::vector<uint8_t>(size_t(m.rows), 0));
  const std::string weight =
      graph_.op("DequantizeLinear", {name, name + "_scale", name + "_zero"}, {{"axis", int64_t(1)}});
  return graph_.op("MatMul", {x, weight});
}

// MatMulNBits: B [out, blocks, group / 2] with value 2j of a block in byte j's low nibble and
// 2j + 1 in its high nibble; scales [out * blocks]; zero points [out * ceil(blocks / 2)], block
// 2i's in byte i's low nibble (absent: 8 for every block).
std::string OnnxMatrixWriter::int4_product(const std::string& x, const Tensor& w, const std::string& name) {
  const MatrixCodes m = matrix_codes(w, DType::Q4, int4_group_);
  const int64_t blocks = m.groups_per_row(), blob = m.group / 2, zero_bytes = (blocks + 1) / 2;
  std::vector<uint8_t> packed(size_t(m.rows * blocks * blob), 0);
  std::vector<uint8_t> zeros(size_t(m.rows * zero_bytes), 0);
  std::vector<float> scales(size_t(m.rows * blocks));
  bool default_zeros = true;
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t b = 0; b < blocks; ++b) {
      const GroupParams& p = m.params[size_t(r * blocks + b)];
      scales[size_t(r * blocks + b)] = p.scale;
      default_zeros = default_zeros && p.zero == 8;
      zeros[size_t(r * zero_bytes + b / 2)] |= uint8_t(p.zero << (4 * (b % 2)));
      for (int64_t j = 0; j < m.group; ++j) {
        const int64_t c = b * m.group + j;
        const int32_t code = c < m.cols ? m.codes[size_t(r * m.cols + c)] : p.zero;  // padding reads as 0
        packed[size_t((r * blocks + b) * blob + j / 2)] |= uint8_t(code << (4 * (j % 2)));
      }
    }
  graph_.add_initializer(name, ElementType::Uint8, {m.rows, blocks, blob}, std::move(packed));
  graph_.add_floats(name + "_scales", {m.rows * blocks}, scales);
  std::vector<std::string> inputs = {x, name, name + "_scales"};
  if (!default_zeros) {
    graph_.add_initializer(name + "_zeros", ElementType::Uint8, {m.rows * zero_bytes}, std::move(zeros));
    inputs.push_back(name + "_zeros");
  }
  return graph_.domain_op("com.microsoft", "MatMulNBits", inputs,
                          {{"K", m.cols}, {"N", m.rows}, {"bits", int64_t(4)}, {"block_size", m.group}});
}

}  // namespace brisk
