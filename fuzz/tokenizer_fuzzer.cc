// Why: tokenizer.json comes with the model and the text comes from users; both are untrusted.
// Past bugs: a ~10M-character whitespace prompt hit PCRE2's match limit in the Split regex, a
// backtracking-heavy regex, token id 2^31-1. The input is a tokenizer.json, optionally followed by
// a NUL byte and the text to encode (JSON text holds no raw NUL, so the split is unambiguous);
// without one, a fixed sample text is encoded.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "exercise_tokenizer.h"
#include "formats/json_file.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/wordpiece_tokenizer.h"

namespace {

// As Tokenizer::load does, minus the files: an empty tokenizer_config.json, then use.
template <class T>
void apply_and_exercise(brisk::Result<std::unique_ptr<T>> tokenizer, std::string_view text) {
  if (!tokenizer.ok() || !tokenizer.value()->apply_config(brisk::TokenizerConfig{}, "tokenizer_config.json: ").ok())
    return;
  brisk::fuzz::exercise_tokenizer(*tokenizer.value(), text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view json_text = input.substr(0, nul);
  const std::string_view text = nul == std::string_view::npos ? brisk::fuzz::kSampleText : input.substr(nul + 1);
  auto root = brisk::parse_json(json_text, "tokenizer.json");
  if (!root.ok()) return 0;
  const std::string prefix = "tokenizer.json: ";
  if (brisk::is_wordpiece_json(root.value()))
    apply_and_exercise(brisk::WordPieceTokenizer::from_json(root.value(), prefix), text);
  else
    apply_and_exercise(brisk::BpeTokenizer::from_json(root.value(), prefix), text);
  return 0;
}
