// tokenizer.json "pre_tokenizer": cuts normalized text into words that BPE encodes
// independently (and that can therefore be cached). Supported: Split (regex or literal, every
// delimiter behaviour), ByteLevel (GPT-2 regex + byte mapping), Metaspace, Digits, Whitespace,
// WhitespaceSplit, BertPreTokenizer, and Sequence of these.
#pragma once

#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "tokenizer/regex.h"

namespace brisk {

class PreTokenizer {
 public:
  // `config` is the "pre_tokenizer" value (null means the whole text is one word).
  static Result<PreTokenizer> from_json(const nlohmann::json& config, const std::string& where);

  using WordVisitor = std::function<void(std::string_view word)>;

  // Calls `visit` on each word of one normalized segment, in order. `at_text_start` says whether
  // the segment begins the input (Metaspace's prepend_scheme "first" only prepends there).
  void split(std::string_view text, bool at_text_start, const WordVisitor& visit) const;

  // True when a ByteLevel step ran: words must go through byte_level::encode before the model.
  // ByteLevel is required to be the last step, so callers can apply the mapping per word (and
  // cache on the raw word).
  bool byte_level() const { return byte_level_; }

 private:
  enum class Kind { Split, ByteLevel, Metaspace, Bert };
  enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
  enum class Prepend { Always, First, Never };
  struct Step {
    Kind kind{};
    std::optional<Pattern> pattern{};  // Split, ByteLevel with use_regex, Metaspace with split
    Behavior behavior = Behavior::Isolated;
    bool invert = false;
    bool add_prefix_space = false;  // ByteLevel
    std::string replacement{};      // Metaspace
    Prepend prepend = Prepend::Always;
  };

  Status append(const nlohmann::json& config, const std::string& where);
  Status append_split(const nlohmann::json& config, const std::string& where);
  Status append_byte_level(const nlohmann::json& config, const std::string& where);
  Status append_metaspace(const nlohmann::json& config, const std::string& where);
  // Applies steps_[step_index..] to text, depth first, so words are never all materialized.
  void run(size_t step_index, std::string_view text, bool at_start, const WordVisitor& visit) const;
  static void split_spans(std::string_view text, const Pattern& pattern, Behavior behavior, bool invert,
                          std::vector<Span>& spans);
  static void bert_spans(std::string_view text, std::vector<Span>& spans);

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace brisk
