// tokenizer.json "decoder", applied one token at a time so output can stream. Hugging Face
// decodes a whole list; the supported decoders are all per-token except Fuse (concatenation,
// which streaming does anyway) and a Strip after Fuse, which only touches the start of the
// whole text: that is what `first` (no token emitted before this one) is for. WordPiece is
// per-token in tokenizers too: a "##" piece glues to the text before it, any other piece but the
// first gets a leading space, and the cleanup rewrites within that one piece.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace brisk {

// The byte a byte-fallback token such as "<0xAB>" stands for, or -1 for any other token.
int byte_token_value(std::string_view token);

class TokenDecoder {
 public:
  // `config` is the "decoder" value (null: tokens are output as spelled).
  static Result<TokenDecoder> from_json(const nlohmann::json& config, const std::string& where);

  // The bytes `token` (its vocabulary spelling) contributes to the output.
  std::string decode(std::string_view token, bool first) const;

 private:
  enum class Kind { ByteLevel, Replace, ByteFallback, Strip, Metaspace, WordPiece };
  struct Step {
    Kind kind{};
    std::string from{};        // Replace: pattern; Strip: the character; Metaspace: replacement;
                               // WordPiece: the continuing-subword prefix
    std::string to{};          // Replace: content
    size_t start = 0;          // Strip: how many leading copies of `from` to remove
    size_t stop = 0;           // Strip: trailing
    bool whole_text = false;   // Strip after Fuse: acts on the start of the output only
    bool strip_first = false;  // Metaspace: drop the replacement in the first token
    bool cleanup = false;      // WordPiece: clean_up_tokenization (" ." -> "." and the like)
  };
  Status append(const nlohmann::json& config, const std::string& where);

  std::vector<Step> steps_;
  bool fused_ = false;
};

}  // namespace brisk
