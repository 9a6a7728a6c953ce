// Speculative decoding (issue 25): a cheap source proposes the next few tokens, the target checks
// them all in one pass, and every proposed token equal to what the target draws there itself is
// kept. The target draws each position exactly as plain decoding does (the same Sampler, seed and
// step; ops/sampling.h's noise depends only on (seed, step, token)), so the output is token for
// token the output without speculation, greedy or sampled: the target's distribution is kept
// because its draws are. A draft model proposes with the same noise on its own logits (a coupled
// draw), so where its distribution is close to the target's it proposes the token the target will
// draw. The one generation loop (Engine::generate) asks a DraftSource before each step.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "runtime/sampler.h"

namespace brisk {

class Engine;

class DraftSource {
 public:
  virtual ~DraftSource() = default;
  // Up to n tokens to follow `sequence` (prompt and output so far; the target has not run its last
  // token yet). `sampler` is the target's at the next position: a draft model draws with a copy.
  virtual std::vector<int32_t> propose(const std::vector<int32_t>& sequence, int64_t n, const Sampler& sampler) = 0;
};

// --lookup N: the tokens that followed the latest earlier occurrence of the sequence's last N
// tokens (then N - 1, ..., 1), in the prompt or the output: repeated names, quotes, code.
class PromptLookup final : public DraftSource {
 public:
  explicit PromptLookup(int64_t ngram) : ngram_(ngram) {}
  std::vector<int32_t> propose(const std::vector<int32_t>& sequence, int64_t n, const Sampler& sampler) override;

 private:
  int64_t ngram_;
};

// --draft DIR: a smaller model with the same tokenizer, its own engine and cache. Between calls it
// keeps the keys and values of what it has run; the next call runs only what changed.
class DraftModel final : public DraftSource {
 public:
  // Errors when the two tokenizers differ (any token's bytes) or the vocabulary sizes do.
  static Result<std::unique_ptr<DraftModel>> attach(Engine& draft, Engine& target);
  std::vector<int32_t> propose(const std::vector<int32_t>& sequence, int64_t n, const Sampler& sampler) override;

 private:
  explicit DraftModel(Engine& draft) : engine_(draft) {}
  Engine& engine_;
  std::vector<int32_t> cached_;  // tokens whose keys and values sit at positions 0.. of its cache
};

// How speculation went: target passes, tokens proposed and kept.
struct SpeculationStats {
  int64_t steps = 0, proposed = 0, accepted = 0;
  double acceptance_rate() const { return proposed ? double(accepted) / double(proposed) : 0.0; }
  // Tokens each target pass yielded: the accepted ones plus its own.
  double tokens_per_step() const { return steps ? double(accepted + steps) / double(steps) : 0.0; }
};

// The draft length, adapted to what was accepted: doubled (up to max) after a step kept every
// proposal, else one more than what was kept.
class DraftLength {
 public:
  explicit DraftLength(int64_t max) : max_(max), current_(max) {}
  int64_t next() const { return current_; }
  void observe(int64_t proposed, int64_t accepted) {
    if (proposed == 0) return;
    current_ = accepted == proposed ? std::min(max_, 2 * current_) : std::max<int64_t>(1, accepted + 1);
  }

 private:
  int64_t max_, current_;
};

}  // namespace brisk
