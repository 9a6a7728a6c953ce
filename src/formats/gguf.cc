#include "formats/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/mapped_file.h"

namespace brisk {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
constexpr uint32_t kVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 8;          // ggml uses 4; anything far beyond is corruption
constexpr int kMaxArrayNesting = 8;

// A bounds-checked little-endian cursor over the mapped file. Each read names the field being
// read so a truncated file reports what it was in the middle of.
class Reader {
 public:
  Reader(const uint8_t* data, uint64_t size, std::string file) : data_(data), size_(size), file_(std::move(file)) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  std::string error_at(const std::string& what) const {
    return file_ + ": " + what + " (at byte " + std::to_string(pos_) + ")";
  }

  template <class T>
  Result<T> read(const std::string& what) {
    if (remaining() < sizeof(T))
      return make_error(error_at(what + ": file truncated (needs " + std::to_string(sizeof(T)) + " bytes, " +
                                 std::to_string(remaining()) + " left)"));
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  Result<std::string> read_string(const std::string& what) {
    BRISK_ASSIGN(len, read<uint64_t>(what + " length"));
    if (len > remaining())
      return make_error(error_at(what + ": string of " + std::to_string(len) + " bytes runs past the end of the file"));
    std::string s(reinterpret_cast<const char*>(data_ + pos_), size_t(len));
    pos_ += len;
    return s;
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string file_;
};

// The fixed size of a scalar value type, or 0 for strings/arrays/unknown types.
uint64_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::Uint8: case GgufType::Int8: case GgufType::Bool: return 1;
    case GgufType::Uint16: case GgufType::Int16: return 2;
    case GgufType::Uint32: case GgufType::Int32: case GgufType::Float32: return 4;
    case GgufType::Uint64: case GgufType::Int64: case GgufType::Float64: return 8;
    default: return 0;
  }
}

bool known_type(uint32_t t) { return t <= uint32_t(GgufType::Float64); }

// Reads one scalar of type t into v.
Status read_scalar(Reader& r, GgufType t, GgufValue& v, const std::string& what) {
  switch (t) {
    case GgufType::Uint8: { BRISK_ASSIGN(x, r.read<uint8_t>(what)); v.integers.push_back(x); break; }
    case GgufType::Int8: { BRISK_ASSIGN(x, r.read<int8_t>(what)); v.integers.push_back(x); break; }
    case GgufType::Bool: {
      BRISK_ASSIGN(x, r.read<uint8_t>(what));
      if (x > 1) return make_error(r.error_at(what + ": bool value " + std::to_string(x) + " is neither 0 nor 1"));
      v.integers.push_back(x);
      break;
    }
    case GgufType::Uint16: { BRISK_ASSIGN(x, r.read<uint16_t>(what)); v.integers.push_back(x); break; }
    case GgufType::Int16: { BRISK_ASSIGN(x, r.read<int16_t>(what)); v.integers.push_back(x); break; }
    case GgufType::Uint32: { BRISK_ASSIGN(x, r.read<uint32_t>(what)); v.integers.push_back(x); break; }
    case GgufType::Int32: { BRISK_ASSIGN(x, r.read<int32_t>(what)); v.integers.push_back(x); break; }
    case GgufType::Int64: { BRISK_ASSIGN(x, r.read<int64_t>(what)); v.integers.push_back(x); break; }
    case GgufType::Uint64: {
      BRISK_ASSIGN(x, r.read<uint64_t>(what));
      if (x > uint64_t(std::numeric_limits<int64_t>::max()))
        return make_error(r.error_at(what + ": uint64 value " + std::to_string(x) + " is out of range"));
      v.integers.push_back(int64_t(x));
      break;
    }
    case GgufType::Float32: { BRISK_ASSIGN(x, r.read<float>(what)); v.floats.push_back(x); break; }
    case GgufType::Float64: { BRISK_ASSIGN(x, r.read<double>(what)); v.floats.push_back(x); break; }
    case GgufType::String: { BRISK_ASSIGN(x, r.read_string(what)); v.strings.push_back(std::move(x)); break; }
    case GgufType::Array: return make_error(r.error_at(what + ": unexpected array"));
  }
  return ok_status();
}

Result<GgufValue> read_value(Reader& r, uint32_t raw_type, const std::string& what, int depth) {
  if (!known_type(raw_type))
    return make_error(r.error_at(what + ": unknown value type " + std::to_string(raw_type)));
  GgufValue v;
  v.type = v.element_type = GgufType(raw_type);
  if (v.type != GgufType::Array) {
    BRISK_TRY(read_scalar(r, v.type, v, what));
    return v;
  }
  BRISK_ASSIGN(element_raw, r.read<uint32_t>(what + " array element type"));
  BRISK_ASSIGN(count, r.read<uint64_t>(what + " array length"));
  if (!known_type(element_raw))
    return make_error(r.error_at(what + ": unknown array element type " + std::to_string(element_raw)));
  v.element_type = GgufType(element_raw);
  // Even the smallest element takes a byte (a string at least its 8-byte length), so a count
  // beyond the bytes left is corruption; checking first keeps a bad count from allocating.
  const uint64_t min_bytes = v.element_type == GgufType::String ? 8
                             : v.element_type == GgufType::Array ? 12
                                                                 : scalar_size(v.element_type);
  if (count > r.remaining() / min_bytes)
    return make_error(r.error_at(what + ": array of " + std::to_string(count) + " elements runs past the end of the file"));
  if (v.element_type == GgufType::Array) {
    // Nested arrays are legal but no key brisk reads uses them: parse (to stay in step) and drop.
    if (depth >= kMaxArrayNesting) return make_error(r.error_at(what + ": arrays nested too deeply"));
    for (uint64_t i = 0; i < count; ++i) {
      BRISK_ASSIGN(inner_type, r.read<uint32_t>(what + " nested array type"));
      BRISK_ASSIGN(inner, read_value(r, inner_type, what + "[" + std::to_string(i) + "]", depth + 1));
      (void)inner;
    }
    return v;
  }
  // Reserve at most 1M up front: a corrupt count in a large file must not allocate gigabytes.
  const size_t reserve = size_t(std::min<uint64_t>(count, 1u << 20));
  if (v.element_type == GgufType::String) v.strings.reserve(reserve);
  else if (v.element_type == GgufType::Float32 || v.element_type == GgufType::Float64) v.floats.reserve(reserve);
  else v.integers.reserve(reserve);
  for (uint64_t i = 0; i < count; ++i) BRISK_TRY(read_scalar(r, v.element_type, v, what));
  return v;
}

}  // namespace

const char* gguf_type_name(GgufType type) {
  static const char* const kNames[] = {"uint8", "int8",   "uint16", "int16",  "uint32", "int32", "float32",
                                       "bool",  "string", "array",  "uint64", "int64",  "float64"};
  return known_type(uint32_t(type)) ? kNames[uint32_t(type)] : "unknown";
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

std::vector<int64_t> GgufTensorInfo::shape() const { return {ne.rbegin(), ne.rend()}; }

bool is_gguf_path(const std::filesystem::path& path) {
  return path.extension() == ".gguf" && !is_directory_path(path);
}

Result<std::shared_ptr<const GgufFile>> GgufFile::open(const std::filesystem::path& path) {
  const std::string where = path.string();
  BRISK_ASSIGN(mapped, MappedFile::open(path));
  auto out = std::shared_ptr<GgufFile>(new GgufFile());
  GgufFile& g = *out;
  g.file_ = mapped;  // held from the start: error messages name the file through path()
  Reader r(mapped->data(), mapped->size(), where);

  BRISK_ASSIGN(magic, r.read<uint32_t>("magic"));
  if (magic != kMagic) return make_error(where + ": bad magic (not a GGUF file: the first 4 bytes are not \"GGUF\")");
  BRISK_ASSIGN(version, r.read<uint32_t>("version"));
  if (version != kVersion)
    return make_error(where + ": unsupported GGUF version " + std::to_string(version) + " (brisk reads version 3; re-convert older files with llama.cpp)");
  g.version_ = version;
  BRISK_ASSIGN(tensor_count, r.read<uint64_t>("tensor_count"));
  BRISK_ASSIGN(kv_count, r.read<uint64_t>("metadata_kv_count"));
  // Each KV takes at least 12 bytes (key length + type), each tensor info at least 24.
  if (kv_count > r.remaining() / 12) return make_error(where + ": metadata_kv_count " + std::to_string(kv_count) + " exceeds what the file can hold (truncated or corrupt)");
  if (tensor_count > r.remaining() / 24) return make_error(where + ": tensor_count " + std::to_string(tensor_count) + " exceeds what the file can hold (truncated or corrupt)");

  for (uint64_t i = 0; i < kv_count; ++i) {
    BRISK_ASSIGN(key, r.read_string("metadata key #" + std::to_string(i)));
    const std::string what = "metadata '" + key + "'";
    BRISK_ASSIGN(type, r.read<uint32_t>(what + " type"));
    BRISK_ASSIGN(value, read_value(r, type, what, 0));
    if (g.metadata_.count(key)) return make_error(where + ": " + what + " appears twice");
    g.metadata_.emplace(std::move(key), std::move(value));
  }
  if (const GgufValue* a = g.find("general.alignment")) {
    if (a->type == GgufType::Array || a->integers.size() != 1)
      return make_error(g.at("general.alignment") + " must be an integer");
    const int64_t align = a->integers[0];
    if (align <= 0 || (align & (align - 1)) != 0 || align > (1 << 20))
      return make_error(g.at("general.alignment") + " = " + std::to_string(align) + " is not a power of two");
    g.alignment_ = uint64_t(align);
  } else {
    g.alignment_ = kDefaultAlignment;
  }

  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo t;
    BRISK_ASSIGN(name, r.read_string("tensor info #" + std::to_string(i) + " name"));
    t.name = std::move(name);
    const std::string what = "tensor '" + t.name + "'";
    BRISK_ASSIGN(n_dims, r.read<uint32_t>(what + " n_dims"));
    if (n_dims == 0 || n_dims > kMaxDims)
      return make_error(where + ": " + what + " has " + std::to_string(n_dims) + " dimensions (expected 1.." + std::to_string(kMaxDims) + ")");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      BRISK_ASSIGN(dim, r.read<uint64_t>(what + " ne[" + std::to_string(d) + "]"));
      if (dim == 0 || dim > (uint64_t(1) << 40) || numel > (uint64_t(1) << 48) / dim)
        return make_error(where + ": " + what + " has an invalid dimension " + std::to_string(dim));
      numel *= dim;
      t.ne.push_back(int64_t(dim));
    }
    BRISK_ASSIGN(type, r.read<uint32_t>(what + " type"));
    const GgmlTypeTraits* traits = ggml_type_traits(type);
    if (!traits) return make_error(where + ": " + what + " has unknown ggml type " + std::to_string(type));
    t.type = traits->type;
    if (t.ne[0] % traits->block_elems != 0)
      return make_error(where + ": " + what + " has " + std::to_string(t.ne[0]) + " columns, not a multiple of the " +
                        traits->name + " block of " + std::to_string(traits->block_elems));
    t.nbytes = numel / uint64_t(traits->block_elems) * uint64_t(traits->block_bytes);
    BRISK_ASSIGN(offset, r.read<uint64_t>(what + " offset"));
    if (offset % g.alignment_ != 0)
      return make_error(where + ": " + what + " offset " + std::to_string(offset) + " is not a multiple of the alignment " + std::to_string(g.alignment_));
    t.offset = offset;
    if (g.tensor_index_.count(t.name)) return make_error(where + ": " + what + " appears twice");
    g.tensor_index_[t.name] = g.tensors_.size();
    g.tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment after the tensor infos.
  const uint64_t data_start = (r.pos() + g.alignment_ - 1) / g.alignment_ * g.alignment_;
  const uint64_t file_size = mapped->size();
  for (auto& t : g.tensors_) {
    if (data_start > file_size || t.offset > file_size - data_start || t.nbytes > file_size - data_start - t.offset)
      return make_error(where + ": tensor '" + t.name + "' (" + std::to_string(t.nbytes) + " bytes at data offset " +
                        std::to_string(t.offset) + ") lies past the end of the " + std::to_string(file_size) +
                        "-byte file (truncated?)");
    t.data = mapped->data() + data_start + t.offset;
  }
  return std::shared_ptr<const GgufFile>(std::move(out));
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

std::string GgufFile::at(const std::string& key) const { return path().string() + ": metadata '" + key + "'"; }

namespace {
std::string describe(const GgufValue& v) {
  if (v.type == GgufType::Array) return std::string("an array of ") + gguf_type_name(v.element_type);
  return std::string("a ") + gguf_type_name(v.type);
}
bool is_float(GgufType t) { return t == GgufType::Float32 || t == GgufType::Float64; }
}  // namespace

Result<std::optional<int64_t>> GgufFile::optional_integer(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::optional<int64_t>();
  if (v->type == GgufType::Array || v->integers.size() != 1 || v->type == GgufType::Bool)
    return make_error(at(key) + ": expected an integer, found " + describe(*v));
  return std::optional<int64_t>(v->integers[0]);
}

Result<int64_t> GgufFile::integer(const std::string& key) const {
  BRISK_ASSIGN(v, optional_integer(key));
  if (!v) return make_error(at(key) + ": missing");
  return *v;
}

Result<std::optional<double>> GgufFile::optional_number(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::optional<double>();
  if (v->type != GgufType::Array && is_float(v->type) && v->floats.size() == 1) return std::optional<double>(v->floats[0]);
  BRISK_ASSIGN(i, optional_integer(key));
  return std::optional<double>(double(*i));
}

Result<double> GgufFile::number(const std::string& key) const {
  BRISK_ASSIGN(v, optional_number(key));
  if (!v) return make_error(at(key) + ": missing");
  return *v;
}

Result<std::optional<std::string>> GgufFile::optional_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::optional<std::string>();
  if (v->type != GgufType::String) return make_error(at(key) + ": expected a string, found " + describe(*v));
  return std::optional<std::string>(v->strings[0]);
}

Result<std::string> GgufFile::string(const std::string& key) const {
  BRISK_ASSIGN(v, optional_string(key));
  if (!v) return make_error(at(key) + ": missing");
  return *v;
}

Result<std::optional<bool>> GgufFile::optional_bool(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::optional<bool>();
  if (v->type != GgufType::Bool) return make_error(at(key) + ": expected a bool, found " + describe(*v));
  return std::optional<bool>(v->integers[0] != 0);
}

Result<const std::vector<std::string>*> GgufFile::strings(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return make_error(at(key) + ": missing");
  if (v->type != GgufType::Array || v->element_type != GgufType::String)
    return make_error(at(key) + ": expected an array of strings, found " + describe(*v));
  return &v->strings;
}

Result<const std::vector<int64_t>*> GgufFile::integers(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return make_error(at(key) + ": missing");
  if (v->type != GgufType::Array || v->element_type == GgufType::String || v->element_type == GgufType::Array ||
      is_float(v->element_type))
    return make_error(at(key) + ": expected an array of integers, found " + describe(*v));
  return &v->integers;
}

Result<const std::vector<double>*> GgufFile::floats(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return make_error(at(key) + ": missing");
  if (v->type != GgufType::Array || !is_float(v->element_type))
    return make_error(at(key) + ": expected an array of floats, found " + describe(*v));
  return &v->floats;
}

Status GgufFile::dequantize(const GgufTensorInfo& tensor, float* dst) const {
  const GgmlTypeTraits& traits = ggml_type_traits(tensor.type);
  if (!traits.dequantize)
    return make_error(path().string() + ": tensor '" + tensor.name + "' has type " + traits.name +
                      ", which brisk cannot decode yet (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)");
  traits.dequantize(tensor.data, tensor.numel() / traits.block_elems, dst);
  return ok_status();
}

}  // namespace brisk
