#include "formats/gguf_writer.h"

#include <cstring>
#include <fstream>
#include <type_traits>
#include <unistd.h>

namespace brisk {

namespace {

constexpr uint32_t kWriterVersion = 3;
constexpr uint64_t kWriterAlignment = 32;  // general.alignment's default: the writer never sets it

template <class T>
void append(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

void append_string(std::string& out, const std::string& s) {
  append<uint64_t>(out, s.size());
  out += s;
}

template <class T>
std::string scalar(GgufType type, T value) {
  std::string out;
  append<uint32_t>(out, uint32_t(type));
  append<T>(out, value);
  return out;
}

template <class T>
std::string array_of(GgufType element, const std::vector<T>& values) {
  std::string out;
  append<uint32_t>(out, uint32_t(GgufType::Array));
  append<uint32_t>(out, uint32_t(element));
  append<uint64_t>(out, values.size());
  for (const T& v : values) {
    if constexpr (std::is_same_v<T, std::string>) append_string(out, v);
    else append<T>(out, v);
  }
  return out;
}

// One element of `type` from a reader's value lists (element i of the integers, floats or strings).
void append_element(std::string& out, GgufType type, const GgufValue& v, size_t i) {
  switch (type) {
    case GgufType::Uint8: case GgufType::Int8: case GgufType::Bool: append<uint8_t>(out, uint8_t(v.integers[i])); break;
    case GgufType::Uint16: case GgufType::Int16: append<uint16_t>(out, uint16_t(v.integers[i])); break;
    case GgufType::Uint32: case GgufType::Int32: append<uint32_t>(out, uint32_t(v.integers[i])); break;
    case GgufType::Uint64: case GgufType::Int64: append<uint64_t>(out, uint64_t(v.integers[i])); break;
    case GgufType::Float32: append<float>(out, float(v.floats[i])); break;
    case GgufType::Float64: append<double>(out, v.floats[i]); break;
    case GgufType::String: append_string(out, v.strings[i]); break;
    case GgufType::Array: break;  // the reader refuses nested arrays of values brisk keeps
  }
}

size_t element_count(GgufType type, const GgufValue& v) {
  if (type == GgufType::String) return v.strings.size();
  if (type == GgufType::Float32 || type == GgufType::Float64) return v.floats.size();
  return v.integers.size();
}

uint64_t padded(uint64_t n) { return (n + kWriterAlignment - 1) / kWriterAlignment * kWriterAlignment; }

}  // namespace

void GgufWriter::set(const std::string& key, std::string encoded) {
  for (Entry& e : metadata_)
    if (e.key == key) {
      e.encoded = std::move(encoded);
      return;
    }
  metadata_.push_back({key, std::move(encoded)});
}

void GgufWriter::set_string(const std::string& key, const std::string& value) {
  std::string out;
  append<uint32_t>(out, uint32_t(GgufType::String));
  append_string(out, value);
  set(key, std::move(out));
}
void GgufWriter::set_u32(const std::string& key, uint32_t value) { set(key, scalar(GgufType::Uint32, value)); }
void GgufWriter::set_f32(const std::string& key, float value) { set(key, scalar(GgufType::Float32, value)); }
void GgufWriter::set_bool(const std::string& key, bool value) { set(key, scalar(GgufType::Bool, uint8_t(value))); }
void GgufWriter::set_strings(const std::string& key, const std::vector<std::string>& values) {
  set(key, array_of(GgufType::String, values));
}
void GgufWriter::set_i32s(const std::string& key, const std::vector<int32_t>& values) {
  set(key, array_of(GgufType::Int32, values));
}
void GgufWriter::set_f32s(const std::string& key, const std::vector<float>& values) {
  set(key, array_of(GgufType::Float32, values));
}

void GgufWriter::set_value(const std::string& key, const GgufValue& value) {
  std::string out;
  const size_t n = element_count(value.element_type, value);
  if (value.type == GgufType::Array) {
    append<uint32_t>(out, uint32_t(GgufType::Array));
    append<uint32_t>(out, uint32_t(value.element_type));
    append<uint64_t>(out, n);
    for (size_t i = 0; i < n; ++i) append_element(out, value.element_type, value, i);
  } else {
    append<uint32_t>(out, uint32_t(value.element_type));
    if (n > 0) append_element(out, value.element_type, value, 0);
  }
  set(key, std::move(out));
}

bool GgufWriter::has(const std::string& key) const {
  for (const Entry& e : metadata_)
    if (e.key == key) return true;
  return false;
}

Status GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape, GgmlType type) {
  const GgmlTypeTraits& t = ggml_type_traits(type);
  if (shape.empty() || shape.size() > 4)
    return make_error("GGUF tensor '" + name + "': " + std::to_string(shape.size()) + " dimensions (1 to 4 allowed)");
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d <= 0) return make_error("GGUF tensor '" + name + "': a dimension is " + std::to_string(d));
    numel *= d;
  }
  if (shape.back() % t.block_elems != 0)
    return make_error("GGUF tensor '" + name + "': rows of " + std::to_string(shape.back()) + " values are not whole " +
                      t.name + " blocks of " + std::to_string(t.block_elems));
  tensors_.push_back({name, shape, type, uint64_t(numel / t.block_elems * t.block_bytes)});
  return ok_status();
}

Status GgufWriter::write(const std::filesystem::path& path, const Encoder& encode) const {
  std::string head = "GGUF";
  append<uint32_t>(head, kWriterVersion);
  append<uint64_t>(head, tensors_.size());
  append<uint64_t>(head, metadata_.size());
  for (const Entry& e : metadata_) {
    append_string(head, e.key);
    head += e.encoded;
  }
  uint64_t offset = 0;
  for (const TensorEntry& t : tensors_) {
    append_string(head, t.name);
    append<uint32_t>(head, uint32_t(t.shape.size()));
    for (auto d = t.shape.rbegin(); d != t.shape.rend(); ++d) append<uint64_t>(head, uint64_t(*d));  // fastest first
    append<uint32_t>(head, uint32_t(t.type));
    append<uint64_t>(head, offset);
    offset += padded(t.nbytes);
  }
  head.resize(padded(head.size()), '\0');

  std::filesystem::path tmp = path;
  tmp += ".partial." + std::to_string(::getpid());
  auto fail = [&](const std::string& message) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);  // an interrupted export leaves nothing behind
    return make_error(message);
  };
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return make_error(tmp.string() + ": cannot open for writing");
    out.write(head.data(), std::streamsize(head.size()));
    std::vector<uint8_t> bytes;
    static const char kZeros[kWriterAlignment] = {};
    for (size_t i = 0; i < tensors_.size() && out; ++i) {
      bytes.assign(tensors_[i].nbytes, 0);
      if (Status s = encode(i, bytes); !s.ok()) {
        out.close();
        return fail(s.error().message);
      }
      if (bytes.size() != tensors_[i].nbytes)
        return fail("GGUF tensor '" + tensors_[i].name + "': encoder gave " + std::to_string(bytes.size()) +
                    " bytes, expected " + std::to_string(tensors_[i].nbytes));
      out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
      out.write(kZeros, std::streamsize(padded(bytes.size()) - bytes.size()));
    }
    if (!out) {
      out.close();
      return fail(tmp.string() + ": write failed (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return fail(path.string() + ": cannot rename from " + tmp.string() + ": " + ec.message());
  return ok_status();
}

}  // namespace brisk
