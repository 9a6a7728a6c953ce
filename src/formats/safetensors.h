// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data.
// Tensors are views into the memory-mapped file; nothing is copied.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/tensor.h"

namespace brisk {

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

class SafetensorsFile {
 public:
  // Validates the header completely: lengths, JSON, dtypes, shapes against byte ranges, ranges
  // inside the file. Errors name the file and the tensor.
  static Result<SafetensorsFile> open(const std::filesystem::path& path);

  const std::vector<NamedTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::filesystem::path& path() const { return file_->path(); }

 private:
  std::shared_ptr<MappedFile> file_;  // keeps the mapping alive for the tensor views
  std::vector<NamedTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (any dtype) in safetensors layout, sorted by name as the reference writer does.
Status write_safetensors(const std::filesystem::path& path, const std::vector<NamedTensor>& tensors,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace brisk
