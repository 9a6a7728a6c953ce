// The WordPiece model of Hugging Face `tokenizers` (BERT and its family): one pre-tokenized word
// in, token ids out, by greedy longest-match-first from the left. Every piece after the first is
// looked up with the continuing-subword prefix ("##"). A word with more characters than
// max_input_chars_per_word, or with a stretch no vocabulary piece matches, becomes the single
// unknown token.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "tokenizer/string_map.h"

namespace brisk {

struct WordPieceOptions {
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  size_t max_input_chars_per_word = 100;
};

class WordPieceModel {
 public:
  // `where` names the file and field for error messages (e.g. "x/tokenizer.json: model"). The
  // unknown token must be in the vocabulary: every word may need it.
  static Result<WordPieceModel> create(std::vector<std::pair<std::string, int32_t>> vocab,
                                       WordPieceOptions options, const std::string& where);

  // Appends the ids of one word (normalized text without whitespace).
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;  // nullptr when the id is not in the vocabulary
  int32_t size() const { return static_cast<int32_t>(id_to_token_.size()); }  // one past the largest id

 private:
  WordPieceOptions options_;
  StringMap<int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> id_present_;
  int32_t unk_id_ = -1;
  size_t longest_token_ = 0;  // bytes, prefix included: no match can be longer
};

}  // namespace brisk
