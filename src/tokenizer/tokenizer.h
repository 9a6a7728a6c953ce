// Text <-> token ids. Loaded from a model folder: tokenizer.json (byte-level BPE,
// SentencePiece-style BPE or WordPiece, as Hugging Face `tokenizers` writes it) or, failing that,
// tokenizer.model (SentencePiece, through libsentencepiece). Ids equal Hugging Face's.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace brisk {

enum class AddSpecial : bool { No, Yes };  // add BOS/EOS as the tokenizer's post-processor says

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Loads tokenizer.json (preferred) or tokenizer.model from a model folder, plus
  // tokenizer_config.json (bos/eos, add_bos_token) when present; or the tokenizer.ggml.*
  // metadata of a .gguf file.
  static Result<std::unique_ptr<Tokenizer>> load(const std::filesystem::path& model_dir);

  // Special/added tokens found inside the text are matched as whole tokens (as HF does).
  virtual std::vector<int32_t> encode(std::string_view text, AddSpecial add_special) const = 0;

  // The bytes a token stands for when it follows `previous` (-1 at the start of the output):
  // SentencePiece-style decoders drop the leading space of the very first piece. May be an
  // incomplete UTF-8 sequence (byte-level / byte-fallback tokens); StreamDecoder reassembles.
  virtual std::string token_bytes(int32_t id, int32_t previous) const = 0;

  // Whole-sequence decode (skip_special: drop special tokens such as <|endoftext|>).
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;

  virtual int32_t vocab_size() const = 0;
  virtual bool is_special(int32_t id) const = 0;
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;

  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }

 protected:
  std::optional<int32_t> bos_id_;
  std::optional<int32_t> eos_id_;
};

}  // namespace brisk
