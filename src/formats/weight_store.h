// All weight tensors of a Hugging Face model folder: model.safetensors, or the shards that
// model.safetensors.index.json names. Every tensor is a view into a mapped file.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/safetensors.h"

namespace brisk {

struct StoredTensor {
  Tensor tensor;
  std::string file;  // which file it came from, for error messages
};

class WeightStore {
 public:
  static Result<WeightStore> open_dir(const std::filesystem::path& model_dir);

  const StoredTensor* find(const std::string& name) const;
  const std::map<std::string, StoredTensor>& all() const { return tensors_; }
  std::string describe() const;  // "model.safetensors" or "3 shards of model.safetensors.index.json"

  // Replaces the stored tensors `parts` by `tensor` under `name`, its memory kept alive by
  // `owner` (quantized checkpoints: packed parts converted once into a runtime block tensor).
  void replace(const std::vector<std::string>& parts, const std::string& name, StoredTensor tensor,
               std::shared_ptr<const void> owner);

 private:
  std::vector<SafetensorsFile> files_;
  std::map<std::string, StoredTensor> tensors_;
  std::vector<std::shared_ptr<const void>> owned_;  // memory of converted tensors
  std::string description_;
};

}  // namespace brisk
