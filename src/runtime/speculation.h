// Speculative decoding (issue 25): a cheap source proposes the next few tokens, the target checks
// them all in one pass, and every proposed token equal to what the target draws there itself is
// kept. The target draws each position exactly as plain decoding does (the same Sampler, seed and
// step, on logits bit for bit a decode step's: ops/backend.h's kDecodeOrderRows; ops/sampling.h's
// noise depends only on (seed, step, token)), so the output is token for token the output without
// speculation, greedy or sampled: the target's distribution is kept because its draws are. A draft
// model proposes with the same noise on its own logits (a coupled draw), so where its distribution
// is close to the target's it proposes the token the target will draw. The one generation loop (Engine::generate) asks a DraftSource before each step.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/backend.h"
#include "runtime/sampler.h"

namespace brisk {

class Engine;
class KvBlocks;
struct SequenceChunk;

// Tokens proposed per step at most, unless the caller says otherwise (--draft-max): the adaptive
// length (DraftLength) starts here and falls to what is being accepted.
constexpr int64_t kDefaultMaxDraft = 8;
// The most a caller may ask for: a step's checking pass (its last token and the proposals) stays
// within kDecodeOrderRows rows, which the CPU backend computes exactly as one-row decode steps.
constexpr int64_t kMaxDraft = kDecodeOrderRows - 1;

// One sequence's keys and values in a draft model's cache: its blocks there and the tokens they
// hold, kept between calls so that a call runs only what changed.
struct DraftCache {
  std::vector<int32_t> blocks;
  std::vector<int32_t> tokens;
};

// One sequence's part of DraftSource::propose_all.
struct DraftRequest {
  const std::vector<int32_t>* sequence;
  int64_t n;
  const Sampler* sampler;
  DraftCache* cache;               // the sequence's own (a draft model's state; lookup keeps none)
  std::vector<int32_t> proposals;  // the answer
};

class DraftSource {
 public:
  virtual ~DraftSource() = default;
  // Up to n tokens to follow `sequence` (prompt and output so far; the target has not run its last
  // token yet). `sampler` is the target's at the next position: a draft model draws with a copy.
  virtual std::vector<int32_t> propose(const std::vector<int32_t>& sequence, int64_t n, const Sampler& sampler) = 0;
  // Every request's proposals (the scheduler's decoding sequences); by default one at a time.
  virtual void propose_all(std::vector<DraftRequest>& requests) {
    for (DraftRequest& r : requests) r.proposals = propose(*r.sequence, r.n, *r.sampler);
  }
  // Gives back what a sequence's cache holds (the sequence ended).
  virtual void release(DraftCache& cache) { (void)cache; }
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

// --draft DIR: a smaller model with the same tokenizer, its own engine and paged cache, drafting
// for one sequence (generate) or for many at once (the scheduler).
class DraftModel final : public DraftSource {
 public:
  // Errors when the two tokenizers differ (any token's bytes) or the vocabulary sizes do.
  static Result<std::unique_ptr<DraftModel>> attach(Engine& draft, Engine& target);
  ~DraftModel() override;
  std::vector<int32_t> propose(const std::vector<int32_t>& sequence, int64_t n, const Sampler& sampler) override;

  // Every request's proposals in batched passes, each through its own cache: one pass over what
  // each cache lacks (at least the sequence's last token, for its logits), then one row per
  // sequence for each further proposal. A sequence whose cache cannot grow (the draft's cache is
  // full) gets none, and its blocks go back for the others.
  void propose_all(std::vector<DraftRequest>& requests) override;
  void release(DraftCache& cache) override;

 private:
  explicit DraftModel(Engine& draft);
  bool reserve(DraftCache& cache, int64_t positions);
  // Runs chunks (each asking for its last row's logits) in passes of at most max_rows rows, a chunk
  // split where it overflows one (its leading rows then give no logits); the rows, one per chunk.
  std::vector<float> run(const std::vector<SequenceChunk>& chunks);
  Engine& engine_;
  std::unique_ptr<KvBlocks> blocks_;
  DraftCache own_;  // propose()'s one sequence
};

// How speculation went: passes of the model (with proposals to check or without), tokens proposed
// and kept.
struct SpeculationStats {
  int64_t steps = 0, proposed = 0, accepted = 0;
  double acceptance_rate() const { return proposed ? double(accepted) / double(proposed) : 0.0; }
  // Tokens each target pass yielded: the accepted ones plus its own.
  double tokens_per_step() const { return steps ? double(accepted + steps) / double(steps) : 0.0; }
};

// The draft length, adapted to what was accepted: doubled (up to max) after a step that kept every
// proposal, else one more than what was kept. While the recent acceptance (a moving average over
// roughly the last 5 steps) is below kMinAcceptance, it proposes nothing for kPauseSteps steps,
// then tries again: a checked proposal costs a share of a step even when rejected.
class DraftLength {
 public:
  // On the CPU (sotu-llama, bf16, 2 threads) a pass of 2 rows took 15% more than 1 row and each
  // further row about 25% more (1 / 2 / 5 rows: 556 / 639 / 1110 us), so proposals kept less
  // often than that lose time. (On a GPU a decode pass is bound by reading the weights, and checked
  // rows cost a few percent: the bound is then loose.)
  static constexpr double kMinAcceptance = 0.25;
  static constexpr int64_t kPauseSteps = 16;

  explicit DraftLength(int64_t max) : max_(max), current_(max) {}
  int64_t next() const { return paused_ > 0 ? 0 : current_; }
  void observe(int64_t proposed, int64_t accepted) {
    if (proposed == 0) {
      paused_ = std::max<int64_t>(0, paused_ - 1);
      return;
    }
    recent_ = 0.8 * recent_ + 0.2 * double(accepted) / double(proposed);
    current_ = accepted == proposed ? std::min(max_, 2 * current_) : std::max<int64_t>(1, accepted + 1);
    if (recent_ < kMinAcceptance) {
      paused_ = kPauseSteps;
      recent_ = 2 * kMinAcceptance;  // after the pause, a few steps to show better
    }
  }

 private:
  int64_t max_, current_;
  double recent_ = 1.0;
  int64_t paused_ = 0;
};

// Whether generate's speculation switches itself off where it measures slower (SpeculationPace).
enum class SpeculationOff { WhenSlower, Never };

// The off switch of one sequence's speculation, by measurement: the seconds per generated token of
// its speculative steps (drafting included, summed over a window of them) against its plain ones
// (a moving average). A window that measures slower (by kMargin; already after kEarlySteps when
// slower by kEarlyMargin) pauses speculation for some plain steps, doubling (kMinPause to kMaxPause)
// while it stays slower; a window that measures faster is followed by kProbeSteps plain steps,
// which keep the plain rate current (it drifts as the context grows). sotu-llama on a 2-vCPU EPYC
// with sotu-qwen2 drafting: 0.41x plain decoding without this (the draft costs a third of a step
// per token, the exact checking rows are FMA-bound), which acceptance alone cannot tell; prompt
// lookup's bursts (nothing proposed for a while, then long runs kept) need the whole window.
class SpeculationPace {
 public:
  static constexpr int64_t kSamples = 8;      // plain steps first: the rate to beat
  static constexpr int64_t kWindow = 48;      // speculative steps judged together
  static constexpr int64_t kEarlySteps = 4;
  static constexpr double kEarlyMargin = 1.5;
  static constexpr double kMargin = 1.02;     // speculation must beat plain by this much
  static constexpr int64_t kMinPause = 32;    // plain steps after a slow window
  static constexpr int64_t kMaxPause = 512;
  static constexpr int64_t kProbeSteps = 4;   // plain steps after a fast window

  // Whether the next step may speculate.
  bool speculate() const { return plain_wanted_ == 0; }
  // A step took `seconds` and yielded `tokens` tokens. The first speculative step after plain ones
  // is not counted: a draft model then catches up on what it missed (the whole prompt at first).
  void observe(double seconds, int64_t tokens, bool speculated) {
    const bool catching_up = speculated && !last_speculated_;
    last_speculated_ = speculated;
    if (!speculated) {
      const double per_token = seconds / double(std::max<int64_t>(tokens, 1));
      plain_ = plain_samples_++ == 0 ? per_token : 0.8 * plain_ + 0.2 * per_token;
      plain_wanted_ = std::max<int64_t>(0, plain_wanted_ - 1);
      return;
    }
    if (catching_up) return;
    window_seconds_ += seconds;
    window_tokens_ += tokens;
    ++window_steps_;
    const double rate = window_seconds_ / double(std::max<int64_t>(window_tokens_, 1));
    if ((window_steps_ == kEarlySteps && rate > kEarlyMargin * plain_) || (window_steps_ == kWindow && rate * kMargin > plain_)) {
      plain_wanted_ = pause_;
      pause_ = std::min(kMaxPause, 2 * pause_);
    } else if (window_steps_ == kWindow) {
      plain_wanted_ = kProbeSteps;
      pause_ = kMinPause;
    } else {
      return;
    }
    window_seconds_ = 0;
    window_tokens_ = window_steps_ = 0;
  }

 private:
  double plain_ = 0;  // seconds per token of plain steps (moving average)
  int64_t plain_samples_ = 0;
  double window_seconds_ = 0;
  int64_t window_tokens_ = 0, window_steps_ = 0;
  int64_t plain_wanted_ = kSamples;
  int64_t pause_ = kMinPause;
  bool last_speculated_ = false;
};

}  // namespace brisk
