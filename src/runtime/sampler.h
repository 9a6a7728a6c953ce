// One sequence's sampling state: its parameters, the tokens its penalties act on, and the step
// counter that seeds each draw. The draw itself is ops/sampling.h's definition, run either here
// on a host logits row (ref::sample_row) or on the device by Backend::sample_rows from the
// parameters this class packs: the same seed gives the same tokens on both.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "grammar/token_masks.h"
#include "ops/sampling.h"

namespace brisk {

// Whether a sequence's grammar (when it has one) has matched a sentence nothing can extend (or
// taken EOS): its output is then complete.
enum class GrammarProgress : bool { Open, Complete };

// The error of a request whose logits row (predicting the token at `position`) held a NaN or no
// finite maximum: Backend::argmax_rows / sample_rows answered kNonFiniteLogits.
std::string non_finite_logits_message(int64_t position);

struct SamplingParams {
  float temperature = 0.8f;         // 0: greedy (argmax)
  int32_t top_k = 40;               // 0: off
  float top_p = 0.95f;              // 1: off
  float min_p = 0.05f;              // 0: off; drop tokens below min_p * p(best)
  float repetition_penalty = 1.0f;  // 1: off; HF semantics over prompt + output
  float presence_penalty = 0.0f;    // OpenAI semantics over the output so far
  float frequency_penalty = 0.0f;
  uint64_t seed = 0;
  // OpenAI's logit_bias: added to these tokens' logits after the penalties (-100 all but bans).
  std::vector<std::pair<int32_t, float>> logit_bias;
  // Constrained decoding (response_format, grammar, forced tool calls): only tokens this grammar
  // allows are drawn, and the output ends when it has matched a whole sentence.
  std::shared_ptr<grammar::ConstrainedGrammar> grammar;

  // Greedy with no penalties, biases or grammar: the token is the argmax of the raw logits, which a
  // backend can pick on the device (Backend::argmax_rows) without the logits reaching the host.
  bool plain_greedy() const {
    return temperature <= 0.0f && repetition_penalty == 1.0f && presence_penalty == 0.0f &&
           frequency_penalty == 0.0f && logit_bias.empty() && !grammar;
  }
};

class Sampler {
 public:
  Sampler(SamplingParams params, int64_t vocab_size);

  // Registers tokens already in the sequence (the prompt) for the repetition penalty.
  void add_prompt(const std::vector<int32_t>& prompt);

  // Picks the next token from logits[vocab] (modified in place by penalties) and records it.
  int32_t sample(float* logits);
  // Records a token drawn elsewhere (Backend::sample_rows from row_params()) as sample() would.
  void accept(int32_t token);

  // This step's parameters for Backend::sample_rows: its penalized tokens (counts()) placed at
  // first_count of the batch's TokenCount array, its allowed mask (write_allowed) at
  // first_allowed_word of the batch's mask words (-1: unconstrained).
  SampleRowParams row_params(int32_t first_count, int32_t first_allowed_word = -1) const;
  // The tokens the penalties act on, each once: what the device needs besides row_params().
  const std::vector<TokenCount>& counts() const { return counts_; }

  // Constrained decoding: whether a grammar limits the next token, and its mask (allowed_words()
  // words: bit t % 32 of word t / 32 set when token t may come next).
  bool constrained() const { return matcher_.has_value(); }
  int64_t allowed_words() const { return (vocab_ + 31) / 32; }
  void write_allowed(uint32_t* words) const;
  GrammarProgress grammar_progress() const {
    return matcher_ && matcher_->finished() ? GrammarProgress::Complete : GrammarProgress::Open;
  }
  // Why no token could be drawn predicting `position` (Backend answered kNonFiniteLogits): the
  // grammar dead-ended, or else the logits were not finite.
  std::string failure_message(int64_t position) const;

 private:
  TokenCount& listed(int32_t token);

  SamplingParams params_;
  int64_t vocab_;
  uint64_t step_ = 0;                          // tokens drawn so far: the RNG counter
  std::vector<TokenCount> counts_;             // only what an active penalty or a bias reads
  std::unordered_map<int32_t, size_t> where_;  // token -> its entry in counts_
  std::vector<float> scratch_;                 // ref::sample_row's working memory
  std::optional<grammar::GrammarMatcher> matcher_;
  std::vector<uint32_t> allowed_;              // sample()'s mask
};

}  // namespace brisk
