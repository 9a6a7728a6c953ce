#include "runtime/perplexity.h"

#include <chrono>
#include <cmath>

#include "runtime/logprobs.h"

namespace brisk {

Result<PerplexityResult> perplexity(Engine& engine, const std::vector<int32_t>& tokens, int64_t ctx,
                                    const std::function<void(int64_t, int64_t)>& progress) {
  if (ctx < 2) return make_error("--ctx must be at least 2");
  if (engine.model().output() != ModelOutput::Logits)
    return make_error("model_type '" + engine.model().config().model_type + "' does not predict tokens: no perplexity");
  if (ctx > engine.context())
    return make_error("--ctx " + std::to_string(ctx) + " exceeds the model's context of " +
                      std::to_string(engine.context()));
  PerplexityResult r;
  r.tokens = int64_t(tokens.size());
  r.windows = r.tokens / ctx;
  if (r.windows == 0)
    return make_error("the text has " + std::to_string(r.tokens) + " tokens, fewer than one window of " +
                      std::to_string(ctx));
  Model& model = engine.model();
  const int64_t vocab = model.config().vocab_size;
  BRISK_TRY(engine.check_token_ids(tokens));
  const int64_t chunk = model.max_rows();
  KvCache& cache = engine.cache();  // each window overwrites positions 0..ctx-1
  std::vector<float> logits(size_t(chunk * vocab));
  const auto t0 = std::chrono::steady_clock::now();

  for (int64_t w = 0; w < r.windows; ++w) {
    const int32_t* window = tokens.data() + w * ctx;
    for (int64_t start = 0; start < ctx; start += chunk) {
      const int64_t rows = std::min(chunk, ctx - start);
      model.forward(window + start, rows, start, cache, LogitRows::All, logits.data());
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t pos = start + i;
        if (pos + 1 >= ctx) break;  // the last position has nothing to predict in this window
        const float* row = logits.data() + i * vocab;
        const double nll = log_normalizer(row, vocab) - double(row[window[pos + 1]]);
        // A NaN or infinite logit would turn the whole result into nan/inf ("ppl: null").
        if (!std::isfinite(nll))
          return make_error("window " + std::to_string(w) + ", position " + std::to_string(pos) + ": " +
                            non_finite_logits_message(pos + 1));
        r.nll_sum += nll;
        ++r.scored;
      }
    }
    if (progress) progress(w + 1, r.windows);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.ppl = std::exp(r.nll_sum / double(r.scored));
  return r;
}

}  // namespace brisk
