// Why: a request's `grammar` (GBNF) and `response_format` schema are compiled and run by the
// server for every constrained request, so both compilers and the matcher see hostile input.
// Each must return a grammar or an error, never crash or run away, and the matcher must agree
// with its own masks: every token a mask allows is accepted, every other one refused.
// Input: a first byte choosing GBNF (even) or a JSON Schema (odd), then the text; the output is
// walked for a few dozen tokens over a small vocabulary of bytes and multi-byte pieces.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "grammar/grammar.h"
#include "grammar/json_schema.h"
#include "grammar/token_masks.h"

namespace {

std::shared_ptr<const brisk::grammar::TokenVocabulary> vocabulary() {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(std::string(1, char(b)));
  for (const char* piece : {"{\"", "\":", "\", \"", "true", "null", "12", "-0.5e3", " ", "\n  ", "\xC3\xA9", "\xE4\xB8",
                            "\xAD\"", "}]", "[{", "\\u00", "abc", "<tool_call>"})
    tokens.push_back(piece);
  tokens.push_back("");  // EOS
  const int32_t eos = int32_t(tokens.size()) - 1;
  return std::make_shared<const brisk::grammar::TokenVocabulary>(tokens, std::vector<std::string>{},
                                                                 std::vector<int32_t>{eos});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto kVocabulary = vocabulary();
  if (size == 0) return 0;
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {
    const nlohmann::ordered_json schema = nlohmann::ordered_json::parse(text, nullptr, false);
    if (schema.is_discarded()) return 0;
    auto gbnf = brisk::grammar::json_schema_gbnf(schema);
    if (!gbnf.ok()) return 0;
    text = gbnf.value();
  }
  auto parsed = brisk::grammar::Grammar::parse(text);
  if (!parsed.ok()) return 0;
  auto grammar = std::make_shared<brisk::grammar::ConstrainedGrammar>(std::move(parsed).value(), kVocabulary);
  brisk::grammar::GrammarMatcher matcher(grammar);
  std::vector<uint32_t> words(size_t(kVocabulary->mask_words()));
  uint32_t pick = 2166136261u;  // FNV over the input: which allowed token to take each step
  for (size_t i = 0; i < size; ++i) pick = (pick ^ data[i]) * 16777619u;
  for (int step = 0; step < 48 && !matcher.finished(); ++step) {
    matcher.allowed(words.data());
    std::vector<int32_t> allowed;
    for (int32_t t = 0; t < kVocabulary->size(); ++t) {
      const bool in_mask = (words[size_t(t) / 32] >> (t % 32)) & 1;
      brisk::grammar::GrammarMatcher probe = matcher;
      if (probe.accept(t) != in_mask) __builtin_trap();  // the mask and the matcher disagree
      if (in_mask) allowed.push_back(t);
    }
    if (allowed.empty()) break;
    pick = pick * 1103515245u + 12345u;
    if (!matcher.accept(allowed[(pick >> 8) % allowed.size()])) __builtin_trap();
  }
  return 0;
}
