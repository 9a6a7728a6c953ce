// A SentencePiece tokenizer.model (folders without tokenizer.json, e.g. the original Llama 2
// release), encoded by libsentencepiece itself so ids equal sentencepiece's exactly.
#pragma once

#include <filesystem>
#include <memory>

#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace brisk {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  static Result<std::unique_ptr<SentencePieceTokenizer>> load(const std::filesystem::path& file);
  ~SentencePieceTokenizer() override;

  // tokenizer_config.json may rename BOS/EOS and say whether to add them.
  Status apply_config(const TokenizerConfig& config, const std::string& where);

  std::vector<int32_t> encode(std::string_view text, AddSpecial add_special) const override;
  std::string token_bytes(int32_t id, int32_t previous) const override;
  int32_t vocab_size() const override;
  bool is_special(int32_t id) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;

 private:
  explicit SentencePieceTokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> sp);

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  bool add_bos_ = true;  // sentencepiece models are trained for a leading BOS
  bool add_eos_ = false;
};

}  // namespace brisk
