#include "runtime/grammar_cache.h"

namespace brisk {

GrammarCache::GrammarCache(const Tokenizer& tokenizer, int64_t vocab_size, std::function<bool(int32_t)> is_eos)
    : tokenizer_(tokenizer), vocab_size_(vocab_size), is_eos_(std::move(is_eos)) {}

std::shared_ptr<const grammar::TokenVocabulary> GrammarCache::vocabulary() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (vocabulary_) return vocabulary_;
  // A token's bytes after another token, and as the output's first (SentencePiece decoders drop
  // the first piece's leading space; token_bytes tells the two apart by `previous`). Special
  // tokens (chat markers) write nothing a grammar could match; EOS is allowed only at the end.
  const int32_t any_previous = tokenizer_.bos_id() == 0 ? 1 : 0;  // a token that is not BOS
  const int32_t named = std::min<int32_t>(tokenizer_.vocab_size(), int32_t(vocab_size_));
  std::vector<std::string> later(static_cast<size_t>(vocab_size_)), first(static_cast<size_t>(vocab_size_));
  std::vector<int32_t> eos;
  for (int32_t t = 0; t < int32_t(vocab_size_); ++t) {
    if (is_eos_(t)) eos.push_back(t);
    if (t >= named || tokenizer_.is_special(t)) continue;
    later[size_t(t)] = tokenizer_.token_bytes(t, any_previous);
    first[size_t(t)] = tokenizer_.token_bytes(t, -1);
  }
  vocabulary_ = std::make_shared<const grammar::TokenVocabulary>(std::move(later), std::move(first), std::move(eos));
  return vocabulary_;
}

Result<std::shared_ptr<grammar::ConstrainedGrammar>> GrammarCache::get(const std::string& gbnf) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = recent_.begin(); it != recent_.end(); ++it)
      if (it->first == gbnf) {
        if (it->second->footprint_bytes() > kMaxGrammarBytes) {
          recent_.erase(it);
          break;
        }
        recent_.splice(recent_.begin(), recent_, it);
        return recent_.front().second;
      }
  }
  BRISK_ASSIGN(parsed, grammar::Grammar::parse(gbnf));
  auto compiled = std::make_shared<grammar::ConstrainedGrammar>(std::move(parsed), vocabulary());
  std::lock_guard<std::mutex> lock(mutex_);
  recent_.emplace_front(gbnf, compiled);
  if (recent_.size() > kKept) recent_.pop_back();
  return compiled;
}

}  // namespace brisk
