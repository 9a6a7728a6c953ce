#include "compress/awq.h"

#include <cmath>
#include <limits>

#include "compress/calib_linalg.h"

namespace brisk::calib {

namespace {

// The reference implementation does not clip q/k: their error is judged through attention scores.
bool skip_clip(const std::string& name) {
  return name.find("q_proj") != std::string::npos || name.find("k_proj") != std::string::npos ||
         name.find("c_attn") != std::string::npos;
}

// mean|x| per producer channel (channels mapped together averaged).
std::vector<double> channel_activity(const ScaleGroup& group, const InputStats& input) {
  const int64_t k = input.width, n = group.channels(k);
  std::vector<double> sum(size_t(n), 0.0), count(size_t(n), 0.0);
  for (int64_t i = 0; i < k; ++i) {
    const size_t c = size_t(group.channel_of.empty() ? i : group.channel_of[size_t(i)]);
    sum[c] += input.mean_abs(i);
    count[c] += 1;
  }
  for (size_t c = 0; c < sum.size(); ++c) sum[c] /= std::max(count[c], 1.0);
  return sum;
}

std::vector<float> scales_for(const std::vector<double>& activity, float alpha) {
  std::vector<float> s(activity.size());
  float lo = std::numeric_limits<float>::max(), hi = 0;
  for (size_t c = 0; c < s.size(); ++c) {
    s[c] = std::max(float(std::pow(activity[c], double(alpha))), 1e-4f);
    lo = std::min(lo, s[c]);
    hi = std::max(hi, s[c]);
  }
  const float norm = std::sqrt(lo * hi);
  for (float& v : s) v /= norm;
  return s;
}

}  // namespace

std::vector<float> scaled_hessian(const std::vector<double>& xtx, const std::vector<float>& s, int64_t k) {
  std::vector<float> h(size_t(k * k));
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      h[size_t(i * k + j)] = float(xtx[size_t(i * k + j)] / (double(s[size_t(i)]) * double(s[size_t(j)])));
  return h;
}

AwqScales awq_search_scales(Backend& backend, FloatWeights& weights, const ScaleGroup& group,
                            const InputStats& input, const QuantSpec& spec, const AwqOptions& options) {
  const int64_t k = input.width;
  const std::vector<double> activity = channel_activity(group, input);
  const std::vector<float> h = to_float(input.xtx);
  AwqScales best;
  best.error = std::numeric_limits<double>::infinity();
  std::vector<float> scaled;
  for (int a = 0; a < std::max(options.grid, 1); ++a) {
    const float alpha = float(a) / float(std::max(options.grid, 1));
    std::vector<float> s = scales_for(activity, alpha);
    const std::vector<float> full = expand_scales(group, s, k);
    double error = 0;
    for (const std::string& name : group.consumers) {
      const std::vector<float>& w = weights.at(name);
      const int64_t rows = weights.rows(name);
      scaled.resize(w.size());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < k; ++i) scaled[size_t(r * k + i)] = w[size_t(r * k + i)] * full[size_t(i)];
      QuantizedMatrix q = quantize_rtn(scaled.data(), rows, k, spec);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < k; ++i) q.dequantized[size_t(r * k + i)] /= full[size_t(i)];
      error += output_error(backend, w.data(), q.dequantized.data(), rows, k, h);
    }
    if (a == 0) best.rtn_error = error;
    if (error < best.error) {
      best.error = error;
      best.alpha = alpha;
      best.scales = std::move(s);
    }
  }
  return best;
}

std::vector<float> awq_search_clip(Backend& backend, const float* w, int64_t rows, int64_t cols,
                                   const std::vector<float>& h, const QuantSpec& spec,
                                   const AwqOptions& options) {
  const int64_t width = spec.group_width(cols), groups = spec.groups(cols);
  std::vector<float> clip(size_t(rows * groups), 1.0f);
  std::vector<double> best(size_t(rows * groups), std::numeric_limits<double>::infinity());
  std::vector<float> hg(size_t(width * width)), dq(size_t(rows * width)), y(size_t(rows * width));
  const int steps = std::max(options.clip_grid, 1);
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t c0 = g * width;
    for (int64_t i = 0; i < width; ++i)
      for (int64_t j = 0; j < width; ++j) hg[size_t(i * width + j)] = h[size_t((c0 + i) * cols + c0 + j)];
    for (int t = 0; t < steps; ++t) {
      const float ratio = 1.0f - options.max_shrink * float(t) / float(steps);
      for (int64_t r = 0; r < rows; ++r) {
        const float* wr = w + r * cols + c0;
        const GridStep step = fit_grid(wr, width, 1, spec, ratio);
        for (int64_t i = 0; i < width; ++i)
          dq[size_t(r * width + i)] = wr[i] - step.round_trip(wr[i], spec.max_code());
      }
      matmul_host(backend, dq.data(), rows, width, hg.data(), width, y.data());
      for (int64_t r = 0; r < rows; ++r) {
        double e = 0;
        for (int64_t i = 0; i < width; ++i) e += double(dq[size_t(r * width + i)]) * double(y[size_t(r * width + i)]);
        if (e < best[size_t(r * groups + g)]) {
          best[size_t(r * groups + g)] = e;
          clip[size_t(r * groups + g)] = ratio;
        }
      }
    }
  }
  return clip;
}

Result<AwqResult> awq_quantize(Backend& backend, FloatWeights& weights, const ModelConfig& config,
                               const CalibrationStats& stats, const QuantSpec& spec,
                               const AwqOptions& options) {
  for (const auto& [name, input] : stats.by_tensor) {
    if (!weights.has(name)) return make_error("awq: calibrated tensor '" + name + "' is not a model weight");
    BRISK_TRY(check_spec(spec, weights.cols(name), "awq: tensor '" + name + "'"));
  }
  AwqResult result;
  // Scales of every group searched on the weights as they stand, then folded: a group only
  // touches its consumers' columns and its producer's rows, which row-wise grids do not mind.
  std::map<std::string, std::vector<float>> input_scale;  // consumer -> s over its input channels
  for (const ScaleGroup& group : scale_groups(config, Folds::All)) {
    const InputStats* input = stats.find(group.consumers[0]);
    if (!input) continue;  // not calibrated (capture limited by CalibrationOptions::select)
    AwqScales found = awq_search_scales(backend, weights, group, *input, spec, options);
    fold_scales(weights, group, found.scales);
    const std::vector<float> full = expand_scales(group, found.scales, input->width);
    for (const std::string& name : group.consumers) input_scale[name] = full;
    result.groups[group.consumers[0]] = std::move(found);
  }
  for (const auto& [name, input] : stats.by_tensor) {
    const int64_t rows = weights.rows(name), cols = weights.cols(name);
    auto it = input_scale.find(name);
    const std::vector<float> s = it != input_scale.end() ? it->second : std::vector<float>(size_t(cols), 1.0f);
    std::vector<float>& w = weights.at(name);
    std::vector<float> clip;
    if (options.clip == ClipSearch::On && !skip_clip(name))
      clip = awq_search_clip(backend, w.data(), rows, cols, scaled_hessian(input->xtx, s, cols), spec, options);
    QuantizedMatrix q = quantize_rtn(w.data(), rows, cols, spec, clip.empty() ? nullptr : clip.data());
    std::copy(q.dequantized.begin(), q.dequantized.end(), w.begin());  // the model may point at w
    result.matrices[name] = std::move(q);
  }
  return result;
}

}  // namespace brisk::calib
