// A Hugging Face tokenizer.json with a BPE model: added tokens -> normalizer -> pre-tokenizer ->
// BPE -> post-processor, and the decoder for the way back. Covers byte-level BPE (GPT-2, Llama 3,
// Qwen) and SentencePiece-style BPE with byte fallback (Llama 2, Mistral, TinyLlama).
#pragma once

#include <filesystem>
#include <memory>

#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/token_decoder.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace brisk {

class BpeTokenizer final : public Tokenizer {
 public:
  // Parses tokenizer.json; errors name the file and field.
  static Result<std::unique_ptr<BpeTokenizer>> load(const std::filesystem::path& file);
  // The same from a parsed tokenizer.json document (GGUF builds one from its metadata);
  // `prefix` starts every error message.
  static Result<std::unique_ptr<BpeTokenizer>> from_json(const nlohmann::json& root, const std::string& prefix);

  // Takes BOS/EOS from tokenizer_config.json, whose add_bos_token/add_eos_token (when present)
  // decide whether encoding adds them, as transformers rebuilds the template from them.
  Status apply_config(const TokenizerConfig& config, const std::string& where);

  std::vector<int32_t> encode(std::string_view text, AddSpecial add_special) const override;
  std::string token_bytes(int32_t id, int32_t previous) const override;
  int32_t vocab_size() const override { return vocab_size_; }
  bool is_special(int32_t id) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;

 private:
  using WordCache = StringMap<std::vector<int32_t>>;  // pre-token word -> its ids, per call

  BpeTokenizer(BpeModel model, Normalizer normalizer, PreTokenizer pre_tokenizer, TokenDecoder decoder,
               std::vector<AddedToken> added, SpecialTokenTemplate specials);
  // Normalizes, pre-tokenizes and BPE-encodes one stretch of text without added tokens.
  void encode_segment(std::string_view text, bool at_text_start, std::vector<int32_t>& ids,
                      WordCache& cache) const;

  BpeModel model_;
  Normalizer normalizer_;
  PreTokenizer pre_tokenizer_;
  TokenDecoder decoder_;
  AddedVocabulary added_;
  SpecialTokenTemplate specials_;
  int32_t vocab_size_ = 0;
};

}  // namespace brisk
