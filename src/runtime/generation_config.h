// generation_config.json: the sampling a model's authors chose and extra end-of-turn ids (chat
// models often end a reply with a token other than the tokenizer's eos). brisk generate and
// brisk chat start from these values; flags given on the command line win.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "runtime/sampler.h"

namespace brisk {

struct GenerationConfig {
  std::optional<bool> do_sample;  // false: greedy, whatever temperature says
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int32_t> top_k;
  std::vector<int32_t> eos_ids;

  // `base` with the values this file sets (do_sample false -> temperature 0).
  SamplingParams apply(SamplingParams base) const;
  // The fields it set, in the file's names ("temperature, top_p"), or "" for none.
  std::string fields_set() const;
};

// The folder's generation_config.json; no file (or a .gguf model) gives an empty config. Fields of
// the wrong type or out of range are errors naming the file and field.
Result<GenerationConfig> read_generation_config(const std::filesystem::path& model_dir);

}  // namespace brisk
