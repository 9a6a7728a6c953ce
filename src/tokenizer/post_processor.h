// tokenizer.json "post_processor", reduced to what encoding a single sequence needs: the special
// token ids placed before and after it (TemplateProcessing's "single" template, Roberta/Bert's
// cls/sep). ByteLevel post-processing only adjusts offsets, which brisk does not track.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "tokenizer/tokenizer_config.h"

namespace brisk {

struct SpecialTokenTemplate {
  std::vector<int32_t> prefix;  // ids before the text, e.g. {<s>}
  std::vector<int32_t> suffix;  // ids after it
};

Result<SpecialTokenTemplate> parse_post_processor(const nlohmann::json& config, const std::string& where);

struct SpecialTokenIds {
  std::optional<int32_t> bos;
  std::optional<int32_t> eos;
};
using TokenLookup = std::function<std::optional<int32_t>(std::string_view token)>;

// Applies tokenizer_config.json to a tokenizer.json's template: bos_token/eos_token name the ids
// (BOS defaults to the template's first prefix token), and add_bos_token/add_eos_token, when
// present, put them into or take them out of the template, as transformers rebuilds it from them.
// `where` starts error messages.
Result<SpecialTokenIds> apply_tokenizer_config(const TokenizerConfig& config, const TokenLookup& token_to_id,
                                               SpecialTokenTemplate& specials, const std::string& where);

}  // namespace brisk
