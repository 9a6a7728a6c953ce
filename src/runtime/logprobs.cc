#include "runtime/logprobs.h"

#include <algorithm>
#include <cmath>

namespace brisk {

double log_normalizer(const float* row, int64_t vocab) {
  double max_logit = row[0];
  for (int64_t v = 1; v < vocab; ++v) max_logit = std::max(max_logit, double(row[v]));
  double sum = 0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(double(row[v]) - max_logit);
  return max_logit + std::log(sum);
}

void append_logprobs(const float* row, int64_t vocab, int32_t chosen, int32_t top_n, std::vector<float>& logprobs,
                     std::vector<std::vector<TokenLogprob>>& top) {
  const double log_norm = log_normalizer(row, vocab);
  logprobs.push_back(float(double(row[chosen]) - log_norm));
  std::vector<TokenLogprob> best;
  if (top_n > 0) {
    std::vector<int32_t> ids(static_cast<size_t>(vocab));
    for (int64_t v = 0; v < vocab; ++v) ids[size_t(v)] = int32_t(v);
    const int64_t n = std::min<int64_t>(top_n, vocab);
    std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
    for (int64_t i = 0; i < n; ++i) best.push_back({ids[size_t(i)], float(double(row[ids[size_t(i)]]) - log_norm)});
  }
  top.push_back(std::move(best));
}

}  // namespace brisk
