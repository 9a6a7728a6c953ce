#include "runtime/sampler.h"

#include "core/error.h"
#include "ops/reference.h"

namespace brisk {

std::string non_finite_logits_message(int64_t position) {
  return "the model produced non-finite logits (NaN or infinity) predicting position " +
         std::to_string(position) + ": the weights or the config (e.g. rms_norm_eps) are broken";
}

Sampler::Sampler(SamplingParams params, int64_t vocab_size) : params_(std::move(params)), vocab_(vocab_size) {
  for (const auto& [token, bias] : params_.logit_bias) listed(token).bias += bias;
}

TokenCount& Sampler::listed(int32_t token) {
  BRISK_CHECK(token >= 0 && token < vocab_, "Sampler: token " + std::to_string(token) + " out of range");
  auto [it, added] = where_.try_emplace(token, counts_.size());
  if (added) counts_.push_back({token, 0, 0, 0.0f});
  return counts_[it->second];
}

void Sampler::add_prompt(const std::vector<int32_t>& prompt) {
  if (params_.repetition_penalty == 1.0f) return;  // only repetition looks at the prompt
  for (int32_t t : prompt) listed(t).in_context = 1;
}

void Sampler::accept(int32_t token) {
  if (token == kNonFiniteLogits) return;  // the request fails; nothing to count
  ++step_;
  if (params_.repetition_penalty != 1.0f || params_.presence_penalty != 0.0f ||
      params_.frequency_penalty != 0.0f) {
    TokenCount& entry = listed(token);
    entry.in_context = 1;
    ++entry.generated;
  }
}

SampleRowParams Sampler::row_params(int32_t first_count) const {
  SampleRowParams p;
  p.seed = params_.seed;
  p.step = step_;
  p.temperature = params_.temperature;
  p.top_k = params_.top_k;
  p.top_p = params_.top_p;
  p.min_p = params_.min_p;
  p.repetition_penalty = params_.repetition_penalty;
  p.presence_penalty = params_.presence_penalty;
  p.frequency_penalty = params_.frequency_penalty;
  p.first_count = first_count;
  p.n_counts = int32_t(counts_.size());
  return p;
}

int32_t Sampler::sample(float* logits) {
  const int32_t token = ref::sample_row(logits, vocab_, row_params(0), counts_.data(), scratch_);
  accept(token);
  return token;
}

}  // namespace brisk
