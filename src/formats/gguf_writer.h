// Writes a GGUF file (version 3, the container formats/gguf.h reads): metadata in the order it was
// set, then tensor infos, then each tensor's data aligned to 32 bytes. Tensor data is encoded one
// tensor at a time by the caller while the file is written, so a model never sits in memory
// twice; the file appears under its name only when complete (written to a temporary name, then
// renamed).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"

namespace brisk {

class GgufWriter {
 public:
  // Setting a key again replaces its value in place.
  void set_string(const std::string& key, const std::string& value);
  void set_u32(const std::string& key, uint32_t value);
  void set_f32(const std::string& key, float value);
  void set_bool(const std::string& key, bool value);
  void set_strings(const std::string& key, const std::vector<std::string>& values);
  void set_i32s(const std::string& key, const std::vector<int32_t>& values);
  void set_f32s(const std::string& key, const std::vector<float>& values);
  void set_value(const std::string& key, const GgufValue& value);  // as a reader found it
  bool has(const std::string& key) const;

  // A tensor of `shape` (row-major, slowest first) and `type`; rows must hold whole blocks.
  Status add_tensor(const std::string& name, const std::vector<int64_t>& shape, GgmlType type);
  size_t tensor_count() const { return tensors_.size(); }
  uint64_t tensor_bytes(size_t index) const { return tensors_[index].nbytes; }

  // Writes the file; encode(i, bytes) fills tensor i's tensor_bytes(i) bytes (resized already).
  using Encoder = std::function<Status(size_t index, std::vector<uint8_t>& bytes)>;
  Status write(const std::filesystem::path& path, const Encoder& encode) const;

 private:
  struct Entry {
    std::string key;
    std::string encoded;  // value type and value, as stored after the key
  };
  struct TensorEntry {
    std::string name;
    std::vector<int64_t> shape;
    GgmlType type;
    uint64_t nbytes;
  };
  void set(const std::string& key, std::string encoded);
  std::vector<Entry> metadata_;
  std::vector<TensorEntry> tensors_;
};

}  // namespace brisk
