// The files of a Hugging Face model folder that are not its weights (tokenizer, generation config,
// chat template, ...): tools that write a new model from an old one (quantize, prune, train,
// distillation students) carry them over.
#pragma once

#include <filesystem>
#include <string>

#include "core/error.h"
#include "formats/json_file.h"
#include "formats/weight_store.h"

namespace brisk {

// Whether config.json travels too (or the tool writes its own).
enum class ConfigFile { Copy, Skip };

// Copies every regular file of `in` into `out` except the weights (*.safetensors and their index)
// and, with ConfigFile::Skip, config.json. Errors name the file.
Status copy_model_side_files(const std::filesystem::path& in, const std::filesystem::path& out, ConfigFile config);

// Refuses an output path that exists and is not an empty folder (before any long work).
Status require_empty_output(const std::filesystem::path& out);

// Refuses a folder whose weights are already quantized (a quantization_config in config.json, or
// a tensor that is not F32/F16/BF16): `tool` ("quantize") works on float weights, whole matrices
// or low-rank factors (brisk lowrank's).
Status require_float_weights(const Json& config, const WeightStore& store, const std::filesystem::path& in,
                             const std::string& tool);
// Refuses, besides, a factored folder (brisk_low_rank): `tool` ("prune", "lowrank", calibrated
// quantization) works on the float model with whole matrices.
Status require_float_model(const Json& config, const WeightStore& store, const std::filesystem::path& in,
                           const std::string& tool);
Status require_float_model(const std::filesystem::path& in, const std::string& tool);

// The hidden folder beside `out` that a tool stages or scratches in: "<parent>/.<name><suffix>"
// (for "-o out/" too).
std::filesystem::path folder_beside(const std::filesystem::path& out, const std::string& suffix);

// Removes a folder with everything in it when it goes out of scope (a failed or finished run
// leaves no scratch), unless release() said it is kept.
class RemovedOnExit {
 public:
  explicit RemovedOnExit(std::filesystem::path dir) : dir_(std::move(dir)) {}
  ~RemovedOnExit();
  RemovedOnExit(const RemovedOnExit&) = delete;
  RemovedOnExit& operator=(const RemovedOnExit&) = delete;
  void release() { dir_.clear(); }

 private:
  std::filesystem::path dir_;
};

}  // namespace brisk
