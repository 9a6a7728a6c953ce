// The pre-tokenizers that tokenizer.ggml.pre names in a byte-level BPE ("gpt2") GGUF vocabulary.
// llama.cpp (src/llama-vocab.cpp) maps each name to a pre-tokenizer type, and each type to a list
// of split regexes applied in sequence plus a few flags; brisk turns a row into the tokenizer.json
// pre-tokenizer Hugging Face would run: a Sequence of Split(regex, Isolated) steps, then
// ByteLevel without its own regex.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace brisk::gguf_pre {

// llama.cpp's ignore_merges: a word that is itself a vocabulary token is emitted whole.
enum class WholeWords { MergeAsUsual, TakeIfInVocab };

struct Row {
  std::vector<std::string_view> names;    // tokenizer.ggml.pre values
  std::vector<std::string_view> regexes;  // applied in order; empty: ByteLevel's own GPT-2 regex
  WholeWords whole_words = WholeWords::MergeAsUsual;
  bool add_bos_by_default = false;  // when tokenizer.ggml.add_bos_token is absent
};

std::span<const Row> rows();

// The row naming `name`, or nullptr.
const Row* find(std::string_view name);

// Every known name, comma-separated, for error messages.
std::string known_names();

// The tokenizer.json "pre_tokenizer" for a row.
nlohmann::json pre_tokenizer_json(const Row& row);

}  // namespace brisk::gguf_pre
