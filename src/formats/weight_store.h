// All weight tensors of a Hugging Face model folder: model.safetensors, or the shards that
// model.safetensors.index.json names. Every tensor is a view into a mapped file. A .gguf file
// opens as a store too (formats/gguf_model.h): renamed to Hugging Face names, its quantized
// tensors decoded into memory the store owns. (Model::bind may drop the pages of tensors the
// backend copied, mapped or owned alike: read a store's tensors before binding, not after.)
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
  // A model folder, or a .gguf file.
  static Result<WeightStore> open(const std::filesystem::path& path);
  // Tensors that point into memory `owners` keep alive.
  static WeightStore from_tensors(std::map<std::string, StoredTensor> tensors, std::string description,
                                  std::vector<std::shared_ptr<const void>> owners);

  const StoredTensor* find(const std::string& name) const;
  const std::map<std::string, StoredTensor>& all() const { return tensors_; }
  std::string describe() const;  // "model.safetensors" or "3 shards of model.safetensors.index.json"

 private:
  std::vector<SafetensorsFile> files_;
  std::vector<std::shared_ptr<const void>> owners_;
  std::map<std::string, StoredTensor> tensors_;
  std::string description_;
};

}  // namespace brisk
