// The GGUF container (llama.cpp / ggml; spec: ggml docs/gguf.md), version 3, little-endian:
//   "GGUF" magic, uint32 version, uint64 tensor_count, uint64 metadata_kv_count,
//   metadata KVs (string key, uint32 value type, value; arrays: uint32 element type, uint64 n, ...),
//   tensor infos (string name, uint32 n_dims, uint64 ne[n_dims] fastest-first, uint32 ggml type,
//   uint64 offset into the data section), padding to `general.alignment` (default 32), data.
// The file is memory-mapped; every read is bounds-checked so a corrupt file yields an error that
// names the file and the field or tensor, never a crash.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/gguf_quants.h"

namespace brisk {

// Metadata value types (gguf_type in the spec).
enum class GgufType : uint32_t {
  Uint8 = 0, Int8 = 1, Uint16 = 2, Int16 = 3, Uint32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
  String = 8, Array = 9, Uint64 = 10, Int64 = 11, Float64 = 12,
};
const char* gguf_type_name(GgufType type);

// A metadata value: a scalar is held as a one-element list. Integer types (and bool) land in
// `integers`, floats in `floats`, strings in `strings`.
struct GgufValue {
  GgufType type = GgufType::Uint8;          // Array for arrays
  GgufType element_type = GgufType::Uint8;  // the scalar type, or the arrays' element type
  std::vector<int64_t> integers;            // uint64 values above INT64_MAX are rejected
  std::vector<double> floats;
  std::vector<std::string> strings;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // dimensions fastest-first as stored: a [rows, cols] matrix is {cols, rows}
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;      // from the start of the data section
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;

  int64_t numel() const;
  std::vector<int64_t> shape() const;  // row-major (slowest-first), as brisk tensors are
};

class GgufFile {
 public:
  static Result<std::shared_ptr<const GgufFile>> open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const GgufValue* find(const std::string& key) const;

  // Typed metadata reads; errors name the file and key (missing key, wrong type, out of range).
  Result<int64_t> integer(const std::string& key) const;
  Result<double> number(const std::string& key) const;  // a float or an integer
  Result<std::string> string(const std::string& key) const;
  Result<const std::vector<std::string>*> strings(const std::string& key) const;
  Result<const std::vector<int64_t>*> integers(const std::string& key) const;
  Result<const std::vector<double>*> floats(const std::string& key) const;
  // Optional keys: absent gives nullopt, present with the wrong type is still an error.
  Result<std::optional<int64_t>> optional_integer(const std::string& key) const;
  Result<std::optional<double>> optional_number(const std::string& key) const;
  Result<std::optional<std::string>> optional_string(const std::string& key) const;
  Result<std::optional<bool>> optional_bool(const std::string& key) const;

  // Decodes a tensor to fp32 (dst holds numel() floats); errors for types brisk cannot decode.
  Status dequantize(const GgufTensorInfo& tensor, float* dst) const;

 private:
  std::string at(const std::string& key) const;  // "<file>: metadata 'key'"

  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

bool is_gguf_path(const std::filesystem::path& path);  // a regular file named *.gguf

}  // namespace brisk
