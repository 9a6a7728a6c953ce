#include "runtime/speculation.h"

#include <algorithm>

#include "runtime/engine.h"

namespace brisk {

std::vector<int32_t> PromptLookup::propose(const std::vector<int32_t>& sequence, int64_t n, const Sampler&) {
  const int64_t len = int64_t(sequence.size());
  for (int64_t g = std::min(ngram_, len - 1); g >= 1; --g) {
    const int32_t* tail = sequence.data() + len - g;
    // The latest earlier match [start, start + g) with at least one token after it.
    for (int64_t start = len - g - 1; start >= 0; --start) {
      if (!std::equal(tail, tail + g, sequence.data() + start)) continue;
      const int64_t from = start + g, count = std::min(n, len - from);
      return std::vector<int32_t>(sequence.begin() + from, sequence.begin() + from + count);
    }
  }
  return {};
}

Result<std::unique_ptr<DraftModel>> DraftModel::attach(Engine& draft, Engine& target) {
  const Tokenizer &d = draft.tokenizer(), &t = target.tokenizer();
  const int64_t dv = draft.model().config().vocab_size, tv = target.model().config().vocab_size;
  if (dv != tv)
    return make_error("--draft: the draft's vocabulary has " + std::to_string(dv) + " entries, the model's " +
                      std::to_string(tv) + ": a draft must share the model's tokenizer");
  if (d.vocab_size() != t.vocab_size())
    return make_error("--draft: the draft's tokenizer has " + std::to_string(d.vocab_size()) + " tokens, the model's " +
                      std::to_string(t.vocab_size()) + ": a draft must share the model's tokenizer");
  for (int32_t id = 0; id < t.vocab_size(); ++id)
    if (d.token_bytes(id, 0) != t.token_bytes(id, 0))
      return make_error("--draft: token " + std::to_string(id) + " is '" + t.token_bytes(id, 0) + "' for the model but '" +
                        d.token_bytes(id, 0) + "' for the draft: a draft must share the model's tokenizer");
  return std::unique_ptr<DraftModel>(new DraftModel(draft));
}

std::vector<int32_t> DraftModel::propose(const std::vector<int32_t>& sequence, int64_t n, const Sampler& sampler) {
  const int64_t len = int64_t(sequence.size());
  n = std::min(n, engine_.context() - len);
  if (n <= 0) return {};
  // Run what the cache lacks (at least the last token, for its logits).
  int64_t keep = 0;
  while (keep < int64_t(cached_.size()) && keep + 1 < len && cached_[size_t(keep)] == sequence[size_t(keep)]) ++keep;
  const float* logits = engine_.extend(sequence.data() + keep, len - keep, keep);
  cached_ = sequence;
  Sampler coupled = sampler;  // the target's noise, penalties and grammar state
  const int64_t vocab = engine_.model().config().vocab_size;
  std::vector<float> row(logits, logits + vocab);
  std::vector<int32_t> out;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t token = coupled.sample(row.data());
    if (token == kNonFiniteLogits) break;
    out.push_back(token);
    if (i + 1 == n) break;
    logits = engine_.extend(&token, 1, len + i);
    cached_.push_back(token);
    row.assign(logits, logits + vocab);
  }
  return out;
}

}  // namespace brisk
