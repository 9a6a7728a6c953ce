// A tokenizer from a GGUF file's tokenizer.ggml.* metadata. llama.cpp stores the vocabulary as
// arrays (tokens, token types, merges or scores) plus a model name: "gpt2" (byte-level BPE with a
// pre-tokenizer named by tokenizer.ggml.pre), "llama" (SentencePiece BPE with byte fallback) or
// "bert" (WordPiece, respelled the SentencePiece way). Each is rebuilt as the tokenizer.json
// Hugging Face would write for it, so the tokenizer.json engines serve every format.
#pragma once

#include <filesystem>
#include <memory>

#include "tokenizer/tokenizer.h"

namespace brisk {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type): read here, written by brisk
// export (export/gguf_vocabulary).
namespace gguf_token {
enum Type : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };
}  // namespace gguf_token

Result<std::unique_ptr<Tokenizer>> load_gguf_tokenizer(const std::filesystem::path& gguf_file);

}  // namespace brisk
