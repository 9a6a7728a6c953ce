#include "train/adamw.h"

#include <cmath>

#include "core/error.h"

namespace brisk::train {

void AdamW::update(float* params, const float* grads, int64_t n, AdamWState& state, int64_t step, double lr) const {
  BRISK_CHECK(step >= 1, "AdamW: steps count from 1");
  if (state.m.empty()) {
    state.m.assign(size_t(n), 0.0f);
    state.v.assign(size_t(n), 0.0f);
  }
  BRISK_CHECK(int64_t(state.m.size()) == n, "AdamW: state of another tensor");
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double correction1 = 1.0 - std::pow(b1, double(step)), correction2 = 1.0 - std::pow(b2, double(step));
  for (int64_t i = 0; i < n; ++i) {
    const double g = grads[i];
    double p = params[i] * (1.0 - lr * options_.weight_decay);  // decoupled decay, before the step
    const double m = b1 * state.m[size_t(i)] + (1.0 - b1) * g;
    const double v = b2 * state.v[size_t(i)] + (1.0 - b2) * g * g;
    state.m[size_t(i)] = float(m);
    state.v[size_t(i)] = float(v);
    p -= lr * (m / correction1) / (std::sqrt(v / correction2) + options_.eps);
    params[i] = float(p);
  }
}

double clip_grad_norm(const std::vector<std::pair<float*, int64_t>>& grads, double max_norm) {
  double squares = 0;
  for (const auto& [g, n] : grads)
    for (int64_t i = 0; i < n; ++i) squares += double(g[i]) * g[i];
  const double norm = std::sqrt(squares);
  if (norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (const auto& [g, n] : grads)
      for (int64_t i = 0; i < n; ++i) g[i] = float(g[i] * scale);
  }
  return norm;
}

}  // namespace brisk::train
