// The files of a Hugging Face model folder that are not its weights (tokenizer, generation config,
// chat template, ...): tools that write a new model from an old one (quantize, prune, train,
// distillation students) carry them over.
#pragma once

#include <filesystem>

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
// a tensor that is not F32/F16/BF16) or factored (brisk_low_rank): `tool` ("quantize", "prune")
// works on the float model with whole matrices.
Status require_float_model(const Json& config, const WeightStore& store, const std::filesystem::path& in,
                           const std::string& tool);
Status require_float_model(const std::filesystem::path& in, const std::string& tool);

}  // namespace brisk
