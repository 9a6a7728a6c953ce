// tokenizer.json "pre_tokenizer": cuts normalized text into words that BPE encodes
// independently (and that can therefore be cached). Supported: Split (regex or literal, every
// delimiter behaviour), ByteLevel (GPT-2 regex + byte mapping), Metaspace, Digits, Whitespace,
// WhitespaceSplit, and Sequence of these.
#pragma once

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

  // Appends the words of one normalized segment. `at_text_start` says whether the segment
  // begins the input (Metaspace's prepend_scheme "first" only prepends there).
  void split(std::string text, bool at_text_start, std::vector<std::string>& words) const;

  // True when a ByteLevel step ran: words must go through byte_level::encode before the model.
  // ByteLevel is required to be the last step, so callers can apply the mapping per word (and
  // cache on the raw word).
  bool byte_level() const { return byte_level_; }

 private:
  enum class Kind { Split, ByteLevel, Metaspace };
  enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
  enum class Prepend { Always, First, Never };
  struct Piece {
    std::string text;
    bool at_start;
  };
  struct Step {
    Kind kind{};
    std::optional<Pattern> pattern{};  // Split, ByteLevel with use_regex, Metaspace with split
    Behavior behavior = Behavior::Isolated;
    bool invert = false;
    bool add_prefix_space = false;  // ByteLevel
    std::string replacement{};        // Metaspace
    Prepend prepend = Prepend::Always;
  };

  Status append(const nlohmann::json& config, const std::string& where);
  Status append_split(const nlohmann::json& config, const std::string& where);
  Status append_byte_level(const nlohmann::json& config, const std::string& where);
  Status append_metaspace(const nlohmann::json& config, const std::string& where);
  void apply(const Step& step, Piece& piece, std::vector<Piece>& out) const;
  static void split_pieces(const Piece& piece, const Pattern& pattern, Behavior behavior,
                           bool invert, std::vector<Piece>& out);

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace brisk
