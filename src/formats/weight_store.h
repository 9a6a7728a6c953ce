// All weight tensors of a Hugging Face model folder: model.safetensors, or the shards that
// model.safetensors.index.json names. Every tensor is a view into a mapped file. A .gguf file
// becomes a store too (models/gguf_model.h, from_tensors): renamed to Hugging Face names, its
// quantized tensors decoded into memory the store owns. (Model::bind may drop the pages of tensors the
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
  // Tensors that point into memory `owners` keep alive.
  static WeightStore from_tensors(std::map<std::string, StoredTensor> tensors, std::string description,
                                  std::vector<std::shared_ptr<const void>> owners);

  const StoredTensor* find(const std::string& name) const;
  const std::map<std::string, StoredTensor>& all() const { return tensors_; }
  std::string describe() const;  // "model.safetensors" or "3 shards of model.safetensors.index.json"

  // Replaces the stored tensors `parts` by `tensor` under `name`, its memory kept alive by
  // `owner` (quantized checkpoints: packed parts converted once into a runtime block tensor).
  void replace(const std::vector<std::string>& parts, const std::string& name, StoredTensor tensor,
               std::shared_ptr<const void> owner);
  // Keeps only the tensors named by `kept`'s keys, each under the name it maps to (a pipeline
  // stage's layers, renumbered from 0). Dropped tensors' pages are never read.
  void select(const std::map<std::string, std::string>& kept);

 private:
  std::vector<SafetensorsFile> files_;
  // Memory of tensors the store made (GGUF decodes, converted quantized checkpoints).
  std::vector<std::shared_ptr<const void>> owners_;
  std::map<std::string, StoredTensor> tensors_;
  std::string description_;
};

}  // namespace brisk
