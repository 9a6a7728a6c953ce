// tokenizer.json "normalizer": rewrites each stretch of text between added tokens before it is
// pre-tokenized (SentencePiece-style tokenizers prepend "▁" and turn spaces into "▁" here; BERT
// lowercases and strips accents). Unicode normalization forms, Lowercase and StripAccents go
// through utf8proc (Debian's libutf8proc), as Hugging Face's go through Rust's unicode crates.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/bert_normalizer.h"
#include "tokenizer/regex.h"

namespace brisk {

class Normalizer {
 public:
  // `config` is the "normalizer" value (null means none).
  static Result<Normalizer> from_json(const nlohmann::json& config, const std::string& where);

  bool empty() const { return steps_.empty(); }
  void apply(std::string& text) const;

 private:
  // Unicode: one utf8proc mapping (a normalization form, or case folding to lower case), or
  // dropping nonspacing marks (StripAccents).
  enum class Kind { Prepend, Replace, Strip, Bert, Unicode, StripAccents, Lowercase };
  struct Step {
    Kind kind{};
    std::string text{};  // Prepend: the prefix; Replace: the replacement
    std::optional<Pattern> pattern{};
    bool strip_left = false;
    bool strip_right = false;
    BertNormalizerOptions bert{};
    int unicode_options = 0;  // Unicode: utf8proc_option_t flags
  };
  Status append(const nlohmann::json& config, const std::string& where);

  std::vector<Step> steps_;
};

}  // namespace brisk
