// The parts of transformers' tokenizer_config.json the engine needs: which tokens are BOS/EOS
// and whether encoding adds them.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "core/error.h"

namespace brisk {

struct TokenizerConfig {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<bool> add_bos_token;  // absent: the tokenizer's own post-processor decides
  std::optional<bool> add_eos_token;
};

// Reads model_dir/tokenizer_config.json; a folder without one yields an empty config.
Result<TokenizerConfig> read_tokenizer_config(const std::filesystem::path& model_dir);

}  // namespace brisk
