// log-softmax of one logits row, in double: the one definition behind perplexity's NLL and the
// server's logprobs (generated and prompt tokens), so a loglikelihood summed through the API
// equals the one perplexity computes on the same tokens.
#pragma once

#include <cstdint>
#include <vector>

namespace brisk {

struct TokenLogprob {
  int32_t id;
  float logprob;
};

// log(sum(exp(row))), computed around the row's maximum.
double log_normalizer(const float* row, int64_t vocab);

// Appends `chosen`'s logprob to `logprobs` and the row's `top_n` most likely tokens to `top`.
void append_logprobs(const float* row, int64_t vocab, int32_t chosen, int32_t top_n, std::vector<float>& logprobs,
                     std::vector<std::vector<TokenLogprob>>& top);

}  // namespace brisk
