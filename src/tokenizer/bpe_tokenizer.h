// A Hugging Face tokenizer.json with a BPE model: added tokens -> normalizer -> pre-tokenizer ->
// BPE -> post-processor, and the decoder for the way back. Covers byte-level BPE (GPT-2, Llama 3,
// Qwen) and SentencePiece-style BPE with byte fallback (Llama 2, Mistral, TinyLlama).
#pragma once

#include <filesystem>
#include <memory>

#include "tokenizer/bpe_model.h"
#include "tokenizer/vocab_tokenizer.h"

namespace brisk {

class BpeTokenizer final : public VocabTokenizer<BpeModel> {
 public:
  // Parses tokenizer.json; errors name the file and field.
  static Result<std::unique_ptr<BpeTokenizer>> load(const std::filesystem::path& file);
  // The same from a parsed tokenizer.json document (GGUF builds one from its metadata);
  // `prefix` starts every error message.
  static Result<std::unique_ptr<BpeTokenizer>> from_json(const nlohmann::json& root, const std::string& prefix);

  std::vector<int32_t> encode(std::string_view text, AddSpecial add_special) const override;

 private:
  using WordCache = StringMap<std::vector<int32_t>>;  // pre-token word -> its ids, per call

  using VocabTokenizer::VocabTokenizer;
  // Normalizes, pre-tokenizes and BPE-encodes one stretch of text without added tokens.
  void encode_segment(std::string_view text, bool at_text_start, std::vector<int32_t>& ids,
                      WordCache& cache) const;
};

}  // namespace brisk
