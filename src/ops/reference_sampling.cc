// The scalar reference of Backend::sample_rows: the steps of ops/sampling.h in plain loops, with a
// sort where the device uses a radix select. runtime/Sampler draws through it, so the host path
// and the device kernels answer to one definition.
#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "ops/reference.h"

namespace brisk::ref {

namespace {

// The lowest logit that top-p keeps among the tokens at or above `cut` (the top-k survivors):
// equal logits form one group, and a group stays while the mass strictly above it is below p.
float top_p_cut(const float* logits, int64_t vocab, const SampleRowParams& p, float max_logit, float cut,
                std::vector<float>& sorted) {
  sorted.clear();
  for (int64_t i = 0; i < vocab; ++i)
    if (logits[i] >= cut) sorted.push_back(logits[i]);
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  auto weight = [&](float logit) { return double(expf(sampling::scaled_logit(logit, max_logit, p.temperature))); };
  double total = 0;
  for (float l : sorted) total += weight(l);
  const double limit = double(p.top_p) * total;
  double above = 0;
  for (size_t i = 0; i < sorted.size() && above < limit;) {
    cut = sorted[i];
    for (; i < sorted.size() && sorted[i] == cut; ++i) above += weight(sorted[i]);
  }
  return cut;
}

}  // namespace

int32_t argmax_row(const float* logits, int64_t vocab) {
  int64_t best = 0;
  bool nan = false;
  for (int64_t i = 0; i < vocab; ++i) {
    nan |= std::isnan(logits[i]);
    if (logits[i] > logits[best]) best = i;
  }
  return nan || vocab == 0 || !std::isfinite(logits[best]) ? kNonFiniteLogits : int32_t(best);
}

int32_t sample_row(float* logits, int64_t vocab, const SampleRowParams& p, const TokenCount* counts,
                   const uint32_t* allowed, std::vector<float>& scratch) {
  if (p.first_allowed_word >= 0) {
    const uint32_t* mask = allowed + p.first_allowed_word;
    for (int64_t i = 0; i < vocab; ++i)
      if (!sampling::token_allowed(mask, i)) logits[i] = -INFINITY;
  }
  for (int32_t i = 0; i < p.n_counts; ++i) {
    const TokenCount& c = counts[p.first_count + i];
    logits[c.token] = sampling::penalized_logit(logits[c.token], c, p);
  }
  const int32_t best = argmax_row(logits, vocab);
  if (best == kNonFiniteLogits || p.temperature <= 0.0f) return best;
  const float max_logit = logits[best];

  // Survivors have a logit of at least `cut` (top-k, then top-p) and pass min-p.
  float cut = -INFINITY;
  if (sampling::top_k_active(p.top_k, vocab)) {
    scratch.assign(logits, logits + vocab);
    const auto kth = scratch.begin() + (p.top_k - 1);
    std::nth_element(scratch.begin(), kth, scratch.end(), std::greater<float>());
    cut = *kth;
  }
  if (p.top_p <= 0.0f) cut = max_logit;
  else if (p.top_p < 1.0f) cut = top_p_cut(logits, vocab, p, max_logit, cut, scratch);

  int32_t chosen = int32_t(best);
  float best_score = -INFINITY;
  for (int64_t i = 0; i < vocab; ++i) {
    // A -inf logit (masked by a grammar, or banned) scores -inf and is never drawn: skip its noise.
    if (!(logits[i] >= cut) || logits[i] == -INFINITY) continue;
    const float z = sampling::scaled_logit(logits[i], max_logit, p.temperature);
    if (!sampling::passes_min_p(z, p.min_p)) continue;
    const float score = z + sampling::gumbel_noise(p.seed, p.step, i);
    if (score > best_score) {  // strict: the lowest index wins a tie
      best_score = score;
      chosen = int32_t(i);
    }
  }
  return chosen;
}

}  // namespace brisk::ref
