#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

namespace brisk {

Sampler::Sampler(SamplingParams params, int64_t vocab_size)
    : params_(params), vocab_(vocab_size), rng_(params.seed) {
  candidates_.reserve(size_t(vocab_size));
}

void Sampler::add_prompt(const std::vector<int32_t>& prompt) {
  for (int32_t t : prompt) ++seen_[t];
}

void Sampler::apply_penalties(float* logits) const {
  if (params_.repetition_penalty != 1.0f)
    for (const auto& [token, count] : seen_) {
      float& l = logits[token];
      l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f)
    for (const auto& [token, count] : generated_)
      logits[token] -= params_.presence_penalty + params_.frequency_penalty * float(count);
}

int32_t Sampler::sample(float* logits) {
  apply_penalties(logits);
  int32_t chosen;
  if (params_.temperature <= 0.0f) {
    chosen = int32_t(std::max_element(logits, logits + vocab_) - logits);
  } else {
    candidates_.clear();
    for (int64_t i = 0; i < vocab_; ++i) candidates_.emplace_back(logits[i], int32_t(i));
    auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first; };
    size_t keep = candidates_.size();
    if (params_.top_k > 0 && size_t(params_.top_k) < keep) {
      keep = size_t(params_.top_k);
      std::partial_sort(candidates_.begin(), candidates_.begin() + long(keep), candidates_.end(), by_logit);
    } else {
      std::sort(candidates_.begin(), candidates_.end(), by_logit);
    }
    candidates_.resize(keep);
    // Softmax over the survivors at the given temperature (max subtracted for stability).
    const float max_logit = candidates_[0].first;
    double total = 0;
    for (auto& c : candidates_) total += (c.first = std::exp((c.first - max_logit) / params_.temperature));
    for (auto& c : candidates_) c.first = float(c.first / total);
    if (params_.top_p < 1.0f) {
      double cumulative = 0;
      size_t n = 0;
      while (n < candidates_.size() && (n == 0 || cumulative < params_.top_p)) cumulative += candidates_[n++].first;
      candidates_.resize(n);
    }
    if (params_.min_p > 0.0f) {
      const float floor = params_.min_p * candidates_[0].first;
      size_t n = 1;
      while (n < candidates_.size() && candidates_[n].first >= floor) ++n;
      candidates_.resize(n);
    }
    double mass = 0;
    for (const auto& c : candidates_) mass += c.first;
    double u = std::uniform_real_distribution<double>(0.0, mass)(rng_);
    chosen = candidates_.back().second;
    for (const auto& c : candidates_) {
      if ((u -= c.first) <= 0) {
        chosen = c.second;
        break;
      }
    }
  }
  ++seen_[chosen];
  ++generated_[chosen];
  return chosen;
}

}  // namespace brisk
