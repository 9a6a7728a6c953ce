#include "runtime/sampler.h"

#include <algorithm>

#include "core/error.h"
#include "ops/reference.h"

namespace brisk {

std::string non_finite_logits_message(int64_t position) {
  return "the model produced non-finite logits (NaN or infinity) predicting position " +
         std::to_string(position) + ": the weights or the config (e.g. rms_norm_eps) are broken";
}

Sampler::Sampler(SamplingParams params, int64_t vocab_size) : params_(std::move(params)), vocab_(vocab_size) {
  for (const auto& [token, bias] : params_.logit_bias) listed(token).bias += bias;
  if (params_.grammar) {
    BRISK_CHECK(params_.grammar->vocabulary().size() == vocab_, "Sampler: the grammar's vocabulary is not the model's");
    matcher_.emplace(params_.grammar);
  }
}

void Sampler::write_allowed(uint32_t* words) const {
  BRISK_CHECK(matcher_.has_value(), "Sampler::write_allowed without a grammar");
  matcher_->allowed(words);
}

std::string Sampler::failure_message(int64_t position) const {
  if (matcher_) {
    std::vector<uint32_t> words(static_cast<size_t>(allowed_words()));
    matcher_->allowed(words.data());
    if (std::all_of(words.begin(), words.end(), [](uint32_t w) { return w == 0; }))
      return "the grammar allows no token of this vocabulary at position " + std::to_string(position) +
             " (it needs bytes no token spells, an end the model has no EOS token for, or it forks into more than " +
             std::to_string(grammar::kMaxStacks) + " parses at once)";
  }
  return non_finite_logits_message(position);
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
  if (matcher_) BRISK_CHECK(matcher_->accept(token), "Sampler: token " + std::to_string(token) + " drawn against the grammar");
  if (params_.repetition_penalty != 1.0f || params_.presence_penalty != 0.0f ||
      params_.frequency_penalty != 0.0f) {
    TokenCount& entry = listed(token);
    entry.in_context = 1;
    ++entry.generated;
  }
}

SampleRowParams Sampler::row_params(int32_t first_count, int32_t first_allowed_word) const {
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
  p.first_allowed_word = matcher_ ? first_allowed_word : -1;
  return p;
}

int32_t Sampler::sample(float* logits) {
  if (matcher_) {
    allowed_.resize(size_t(allowed_words()));
    write_allowed(allowed_.data());
  }
  const int32_t token = ref::sample_row(logits, vocab_, row_params(0, 0), counts_.data(), allowed_.data(), scratch_);
  accept(token);
  return token;
}

}  // namespace brisk
