// tokenizer.json "post_processor", reduced to what encoding a single sequence needs: the special
// token ids placed before and after it (TemplateProcessing's "single" template, Roberta/Bert's
// cls/sep). ByteLevel post-processing only adjusts offsets, which brisk does not track.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/error.h"

namespace brisk {

struct SpecialTokenTemplate {
  std::vector<int32_t> prefix;  // ids before the text, e.g. {<s>}
  std::vector<int32_t> suffix;  // ids after it
};

Result<SpecialTokenTemplate> parse_post_processor(const nlohmann::json& config, const std::string& where);

}  // namespace brisk
