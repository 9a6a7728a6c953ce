// Perplexity by consecutive non-overlapping windows: in each window of ctx tokens, positions
// 0..ctx-2 predict tokens 1..ctx-1; the last partial window is dropped; ppl = exp(mean NLL).
#pragma once

#include <functional>
#include <vector>

#include "runtime/engine.h"

namespace brisk {

struct PerplexityResult {
  double ppl = 0;
  double nll_sum = 0;
  int64_t tokens = 0;   // tokens in the whole text
  int64_t windows = 0;
  int64_t scored = 0;   // predictions scored: windows * (ctx - 1)
  double seconds = 0;
};

// progress(done_windows, total_windows) after each window.
Result<PerplexityResult> perplexity(Engine& engine, const std::vector<int32_t>& tokens, int64_t ctx,
                                    const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace brisk
