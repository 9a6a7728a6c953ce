#include "formats/sparse_checkpoint.h"

#include <bit>
#include <cstring>
#include <memory>

#include "formats/config_fields.h"

namespace brisk {

namespace {

constexpr const char* kParts[] = {".shape", ".bitmask", ".row_offsets"};

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

int64_t mask_bytes(int64_t cols) { return (cols + 7) / 8; }

int64_t read_i64(const Tensor& t, int64_t i) {
  int64_t v = 0;
  std::memcpy(&v, static_cast<const uint8_t*>(t.data) + size_t(i) * 8, 8);
  return v;
}

}  // namespace

const char* sparse_format_name(SparseFormat f) {
  return f == SparseFormat::Bitmask ? "sparse-bitmask" : "sparse-24-bitmask";
}

Result<std::vector<OwnedTensor>> sparse_disk_tensors(const std::string& weight_name, const Tensor& weight,
                                                     SparseFormat format) {
  if (!is_float(weight.dtype) || weight.rank() != 2)
    return make_error("'" + weight_name + "': sparse storage takes F32/F16/BF16 matrices, not " +
                      std::string(dtype_name(weight.dtype)) + " " + shape_string(weight.shape));
  const int64_t rows = weight.dim(0), cols = weight.dim(1);
  const size_t es = dtype_size(weight.dtype);
  if (format == SparseFormat::Bitmask24 && cols % 4 != 0)
    return make_error("'" + weight_name + "': 2:4 storage needs the inputs (" + std::to_string(cols) +
                      ") in whole groups of 4");
  OwnedTensor shape{weight_name + ".shape", DType::I64, {2}, std::vector<uint8_t>(16)};
  const int64_t dims[2] = {rows, cols};
  std::memcpy(shape.bytes.data(), dims, 16);
  OwnedTensor bitmask{weight_name + ".bitmask", DType::U8, {rows, mask_bytes(cols)},
                      std::vector<uint8_t>(size_t(rows * mask_bytes(cols)), 0)};
  OwnedTensor offsets{weight_name + ".row_offsets", DType::I64, {rows}, std::vector<uint8_t>(size_t(rows) * 8)};
  std::vector<uint8_t> values;
  const uint8_t* w = static_cast<const uint8_t*>(weight.data);
  int64_t kept = 0;
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(offsets.bytes.data() + size_t(r) * 8, &kept, 8);
    for (int64_t c0 = 0; c0 < cols; c0 += 4) {
      const int64_t end = std::min(cols, c0 + 4);
      bool keep[4] = {};
      int64_t nonzero = 0;
      for (int64_t c = c0; c < end; ++c) nonzero += keep[c - c0] = load_as_f32(w, weight.dtype, size_t(r * cols + c)) != 0;
      if (format == SparseFormat::Bitmask24) {
        if (nonzero > 2)
          return make_error("'" + weight_name + "' row " + std::to_string(r) + " has " + std::to_string(nonzero) +
                            " non-zeros in columns " + std::to_string(c0) + ".." + std::to_string(c0 + 3) +
                            ": not 2:4 sparse");
        for (int64_t c = c0; c < end && nonzero < 2; ++c)  // exactly two values per group: pad with zeros
          if (!keep[c - c0]) keep[c - c0] = true, ++nonzero;
      }
      for (int64_t c = c0; c < end; ++c) {
        if (!keep[c - c0]) continue;
        bitmask.bytes[size_t(r * mask_bytes(cols) + c / 8)] |= uint8_t(1u << (c % 8));
        values.insert(values.end(), w + size_t(r * cols + c) * es, w + size_t(r * cols + c + 1) * es);
        ++kept;
      }
    }
  }
  std::vector<int64_t> value_shape = {kept};
  if (format == SparseFormat::Bitmask24) value_shape = {rows, cols / 2};
  std::vector<OwnedTensor> out;
  out.push_back(std::move(shape));
  out.push_back({weight_name + ".compressed", weight.dtype, value_shape, std::move(values)});
  out.push_back(std::move(bitmask));
  if (format == SparseFormat::Bitmask) out.push_back(std::move(offsets));
  return out;
}

Json sparsity_quantization_config(SparseFormat format, double global_sparsity, const std::vector<std::string>& targets) {
  return {{"quant_method", "compressed-tensors"},
          {"sparsity_config",
           {{"format", sparse_format_name(format)},
            {"global_sparsity", global_sparsity},
            {"sparsity_structure", format == SparseFormat::Bitmask24 ? "2:4" : "unstructured"},
            {"targets", targets},
            {"ignore", Json::array()}}}};
}

bool is_sparse_only(const Json& q) {
  const auto groups = q.is_object() ? q.find("config_groups") : q.end();
  return q.is_object() && q.contains("sparsity_config") && (groups == q.end() || groups->is_null());
}

Result<bool> has_sparsity_config(const Json& q, const std::string& where) {
  if (!q.is_object()) return false;
  const auto s = q.find("sparsity_config");
  if (s == q.end() || s->is_null()) return false;
  const std::string at = where + ": quantization_config.sparsity_config";
  if (!s->is_object()) return make_error(at + " is not an object");
  BRISK_ASSIGN(format, ConfigFields(*s, at).string_or("format", ""));
  if (format == "dense") return false;  // compressed-tensors' name for "stored as it is"
  if (format != sparse_format_name(SparseFormat::Bitmask) && format != sparse_format_name(SparseFormat::Bitmask24))
    return make_error(at + ": format '" + format + "' is not read by brisk (sparse-bitmask, sparse-24-bitmask, dense)");
  return true;
}

Status decompress_sparse_tensors(const Json& q, WeightStore& store, const std::string& where) {
  BRISK_ASSIGN(sparse, has_sparsity_config(q, where));
  if (!sparse) return ok_status();
  std::vector<std::string> names;
  for (const auto& [name, stored] : store.all())
    if (name.size() > 11 && name.compare(name.size() - 11, 11, ".compressed") == 0) names.push_back(name);
  for (const std::string& name : names) {
    const std::string base = name.substr(0, name.size() - 11);
    const StoredTensor& values = *store.find(name);
    const std::string at = values.file + ": '" + base + "'";
    const StoredTensor* shape = store.find(base + ".shape");
    const StoredTensor* bitmask = store.find(base + ".bitmask");
    const StoredTensor* offsets = store.find(base + ".row_offsets");
    if (!shape || !bitmask) return make_error(at + " is stored sparse but lacks its .shape or .bitmask");
    if (shape->tensor.numel() != 2 || shape->tensor.dtype != DType::I64)
      return make_error(at + ".shape must be I64 [2]");
    const int64_t rows = read_i64(shape->tensor, 0), cols = read_i64(shape->tensor, 1);
    if (rows < 1 || cols < 1 || rows > (int64_t(1) << 24) || cols > (int64_t(1) << 24))
      return make_error(at + ".shape holds " + std::to_string(rows) + " x " + std::to_string(cols));
    if ((bitmask->tensor.dtype != DType::U8 && bitmask->tensor.dtype != DType::I8) ||
        bitmask->tensor.shape != std::vector<int64_t>{rows, mask_bytes(cols)})
      return make_error(at + ".bitmask is " + std::string(dtype_name(bitmask->tensor.dtype)) + " " +
                        shape_string(bitmask->tensor.shape) + ", expected U8 " + shape_string({rows, mask_bytes(cols)}));
    if (!is_float(values.tensor.dtype))
      return make_error(at + ".compressed is " + std::string(dtype_name(values.tensor.dtype)) +
                        "; brisk reads sparse F32/F16/BF16 values");
    if (offsets && (offsets->tensor.dtype != DType::I64 || offsets->tensor.shape != std::vector<int64_t>{rows}))
      return make_error(at + ".row_offsets must be I64 [" + std::to_string(rows) + "]");
    const uint8_t* mask = static_cast<const uint8_t*>(bitmask->tensor.data);
    const size_t es = dtype_size(values.tensor.dtype);
    const int64_t n_values = values.tensor.numel();
    auto dense = std::shared_ptr<uint8_t[]>(new uint8_t[size_t(rows * cols) * es]());
    const uint8_t* src = static_cast<const uint8_t*>(values.tensor.data);
    int64_t next = 0;
    for (int64_t r = 0; r < rows; ++r) {
      if (offsets && read_i64(offsets->tensor, r) != next)
        return make_error(at + ".row_offsets[" + std::to_string(r) + "] is " +
                          std::to_string(read_i64(offsets->tensor, r)) + ", the bitmask says " + std::to_string(next));
      for (int64_t c = 0; c < cols; ++c) {
        if (!(mask[r * mask_bytes(cols) + c / 8] >> (c % 8) & 1)) continue;
        if (next >= n_values)
          return make_error(at + ": the bitmask marks more values than .compressed holds (" + std::to_string(n_values) + ")");
        std::memcpy(dense.get() + size_t(r * cols + c) * es, src + size_t(next) * es, es);
        ++next;
      }
    }
    if (next != n_values)
      return make_error(at + ": .compressed holds " + std::to_string(n_values) + " values, the bitmask marks " +
                        std::to_string(next));
    std::vector<std::string> parts = {name};
    for (const char* p : kParts) parts.push_back(base + p);
    StoredTensor t{Tensor{dense.get(), values.tensor.dtype, {rows, cols}}, values.file};
    store.replace(parts, base, std::move(t), std::move(dense));
  }
  return ok_status();
}

}  // namespace brisk
