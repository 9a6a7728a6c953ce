// Turns a row of logits into the next token: penalties, then greedy or temperature sampling with
// top-k / top-p / min-p truncation. Deterministic for a given seed.
#pragma once

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

namespace brisk {

struct SamplingParams {
  float temperature = 0.8f;         // 0: greedy (argmax)
  int32_t top_k = 40;               // 0: off
  float top_p = 0.95f;              // 1: off
  float min_p = 0.05f;              // 0: off; drop tokens below min_p * p(best)
  float repetition_penalty = 1.0f;  // 1: off; HF semantics over prompt + output
  float presence_penalty = 0.0f;    // OpenAI semantics over the output so far
  float frequency_penalty = 0.0f;
  uint64_t seed = 0;

  // Greedy with no penalties: the token is the argmax of the raw logits, which a backend can
  // pick on the device (Backend::argmax_rows) without the logits ever reaching the host.
  bool plain_greedy() const {
    return temperature <= 0.0f && repetition_penalty == 1.0f && presence_penalty == 0.0f &&
           frequency_penalty == 0.0f;
  }
};

class Sampler {
 public:
  Sampler(SamplingParams params, int64_t vocab_size);

  // Registers tokens already in the sequence (the prompt) for the repetition penalty.
  void add_prompt(const std::vector<int32_t>& prompt);
  // Picks the next token from logits[vocab] (modified in place by penalties) and records it.
  int32_t sample(float* logits);

 private:
  void apply_penalties(float* logits) const;

  SamplingParams params_;
  int64_t vocab_;
  std::mt19937_64 rng_;
  std::unordered_map<int32_t, int32_t> seen_;       // prompt + output tokens (repetition)
  std::unordered_map<int32_t, int32_t> generated_;  // output token counts (presence/frequency)
  std::vector<std::pair<float, int32_t>> candidates_;  // reused every step
};

}  // namespace brisk
