// Grammars bound to one model's vocabulary, compiled once per text and shared: requests with the
// same response_format or GBNF reuse each other's token masks (grammar/token_masks.h), which is
// what keeps the mask's cost per step a lookup after the first request.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "grammar/token_masks.h"
#include "tokenizer/tokenizer.h"

namespace brisk {

class GrammarCache {
 public:
  // vocab_size: the model's logits width (the tokenizer may name fewer ids, never allowed).
  GrammarCache(const Tokenizer& tokenizer, int64_t vocab_size, std::function<bool(int32_t)> is_eos);

  // The grammar of `gbnf` over this vocabulary; an error names what is wrong with the text.
  Result<std::shared_ptr<grammar::ConstrainedGrammar>> get(const std::string& gbnf);

  // The vocabulary's byte strings (built on first use: a pass over every token).
  std::shared_ptr<const grammar::TokenVocabulary> vocabulary();

 private:
  // Distinct grammars kept; each holds its masks (vocab / 8 bytes per parse state seen) and
  // states. One that grows past kMaxGrammarBytes (an open-ended grammar such as json_object meets
  // new states with every nesting) is replaced by a fresh compile for new requests; requests
  // decoding with it keep it until they end.
  static constexpr size_t kKept = 32;
  static constexpr size_t kMaxGrammarBytes = size_t(64) << 20;

  const Tokenizer& tokenizer_;
  int64_t vocab_size_;
  std::function<bool(int32_t)> is_eos_;
  std::mutex mutex_;
  std::shared_ptr<const grammar::TokenVocabulary> vocabulary_;
  std::list<std::pair<std::string, std::shared_ptr<grammar::ConstrainedGrammar>>> recent_;  // most recent first
};

}  // namespace brisk
