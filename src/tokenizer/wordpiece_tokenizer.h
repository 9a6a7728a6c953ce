// A Hugging Face tokenizer.json with a WordPiece model (BERT, DistilBERT, MiniLM, BGE, E5, ...):
// added tokens -> normalizer (BertNormalizer) -> pre-tokenizer (BertPreTokenizer) -> WordPiece ->
// post-processor ([CLS] $A [SEP]), and the WordPiece decoder for the way back. Also built from a
// GGUF file's "bert" vocabulary (gguf_tokenizer.cc).
#pragma once

#include <filesystem>
#include <memory>
#include <span>

#include "tokenizer/vocab_tokenizer.h"
#include "tokenizer/wordpiece_model.h"

namespace brisk {

// Whether a tokenizer.json document's model is WordPiece (by its "type", or for untagged files by
// having a vocabulary but no merges, as tokenizers decides).
bool is_wordpiece_json(const nlohmann::json& root);

class WordPieceTokenizer final : public VocabTokenizer<WordPieceModel> {
 public:
  // Parses a tokenizer.json document whose model is WordPiece; `prefix` starts every error
  // message (the file name).
  static Result<std::unique_ptr<WordPieceTokenizer>> from_json(const nlohmann::json& root,
                                                               const std::string& prefix);

  std::vector<int32_t> encode(std::string_view text, AddSpecial add_special) const override;

  // Truncation belongs to the caller (encoders cap input at model_max_length): encode without
  // specials, keep at most max_length - special_token_count() ids, then add_special_tokens()
  // wraps them exactly as encode(text, AddSpecial::Yes) would have.
  size_t special_token_count() const { return specials_.prefix.size() + specials_.suffix.size(); }
  std::vector<int32_t> add_special_tokens(std::span<const int32_t> ids) const;

 private:
  using VocabTokenizer::VocabTokenizer;
};

}  // namespace brisk
