// The files of a Hugging Face model folder that are not its weights (tokenizer, generation config,
// chat template, ...): tools that write a new model from an old one (quantize, prune, train,
// distillation students) carry them over.
#pragma once

#include <filesystem>

#include "core/error.h"

namespace brisk {

// Whether config.json travels too (or the tool writes its own).
enum class ConfigFile { Copy, Skip };

// Copies every regular file of `in` into `out` except the weights (*.safetensors and their index)
// and, with ConfigFile::Skip, config.json. Errors name the file.
Status copy_model_side_files(const std::filesystem::path& in, const std::filesystem::path& out, ConfigFile config);

}  // namespace brisk
