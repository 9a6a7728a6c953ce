// A model's tokenizer as GGUF tokenizer.ggml.* metadata, the inverse of gguf_tokenizer.cc: what
// brisk export writes so that llama.cpp (and brisk reading the file back) tokenize as the source
// folder does.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "core/error.h"
#include "formats/gguf_writer.h"

namespace brisk {

struct GgufVocabularyReport {
  std::string model;  // tokenizer.ggml.model written ("gpt2"), or "" when the source has no tokenizer
  std::string pre;    // tokenizer.ggml.pre written, or ""
  int64_t tokens = 0;
};

// From a Hugging Face folder's tokenizer.json (byte-level BPE: tokenizer.ggml.model "gpt2", the
// pre-tokenizer named by the llama.cpp type that splits and merges as it does), the special ids
// and add_bos/add_eos as brisk's own tokenizer of the folder applies them; from a .gguf file, its
// tokenizer.* keys as they are. `chat_template`, when given, is stored as tokenizer.chat_template.
// A folder without tokenizer.json or tokenizer.model gets no vocabulary (the report says so);
// tokenizers GGUF cannot express (SentencePiece, byte fallback, a normalizer, a pre-tokenizer
// llama.cpp has no type for) are errors naming what is missing.
Result<GgufVocabularyReport> write_gguf_vocabulary(const std::filesystem::path& model,
                                                   const std::optional<std::string>& chat_template,
                                                   GgufWriter& out);

}  // namespace brisk
