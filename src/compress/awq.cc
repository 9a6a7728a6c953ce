#include "compress/awq.h"

#include <cmath>
#include <limits>

#include "compress/calib_linalg.h"

namespace brisk::calib {

namespace {

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
    const std::vector<float> h_scaled = scaled_hessian(input.xtx, full, k);
    double error = 0;
    for (const std::string& name : group.consumers) {
      const std::vector<float>& w = weights.at(name);
      const int64_t rows = weights.rows(name);
      scaled.resize(w.size());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < k; ++i) scaled[size_t(r * k + i)] = w[size_t(r * k + i)] * full[size_t(i)];
      UnpackedMatrix q = awq_quantize_matrix(backend, scaled.data(), rows, k, h_scaled, spec, options);
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

std::vector<GroupParams> awq_search_clip(Backend& backend, const float* w, int64_t rows, int64_t cols,
                                         const std::vector<float>& h, const QuantSpec& spec,
                                         const AwqOptions& options) {
  const QuantTraits& traits = scheme_traits(spec.scheme);
  const int64_t width = group_width(spec, cols), groups = groups_per_row(spec, cols);
  // Start from RTN's grids; dq = w - q over the whole row, kept current as groups change.
  std::vector<GroupParams> grids = rtn_grids(w, rows, cols, spec);
  std::vector<float> dq(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const float v = w[r * cols + c];
      dq[size_t(r * cols + c)] = v - round_trip(traits, v, grids[size_t(r * groups + c / width)]);
    }
  std::vector<float> hg(size_t(width * width)), hrows(size_t(width * cols)), trial(size_t(rows * width));
  std::vector<float> y(size_t(rows * width)), cross(size_t(rows * width), 0.0f);
  // Cross-group terms for asymmetric grids only, see awq.h.
  const bool cross_terms = spec.symmetry == Symmetry::Asymmetric;
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t c0 = g * width;
    for (int64_t i = 0; i < width; ++i)
      for (int64_t j = 0; j < width; ++j) hg[size_t(i * width + j)] = h[size_t((c0 + i) * cols + c0 + j)];
    // The row error's part that depends on group g: dq_g Hgg dq_g^T + 2 dq_g . cross_g, where
    // cross_g = H[g, others] dq_others (the other groups held at their current grids).
    if (cross_terms) {
      std::copy(h.begin() + c0 * cols, h.begin() + (c0 + width) * cols, hrows.begin());
      matmul_host(backend, dq.data(), rows, cols, hrows.data(), width, cross.data());
      for (int64_t r = 0; r < rows; ++r)
        std::copy(dq.begin() + r * cols + c0, dq.begin() + r * cols + c0 + width, trial.begin() + r * width);
      matmul_host(backend, trial.data(), rows, width, hg.data(), width, y.data());
      for (size_t i = 0; i < cross.size(); ++i) cross[i] -= y[i];
    }
    const RowGroupRanges ranges(w + c0, rows, width, cols, spec);
    const std::vector<Shrink> best =
        search_shrinks(rows, spec, options.clip(spec), [&](const std::vector<Shrink>& shrinks, std::vector<double>& error) {
          for (int64_t r = 0; r < rows; ++r) {
            const float* wr = w + r * cols + c0;
            const GroupParams p = ranges.grid(r, shrinks[size_t(r)]);
            for (int64_t i = 0; i < width; ++i) trial[size_t(r * width + i)] = wr[i] - round_trip(traits, wr[i], p);
          }
          matmul_host(backend, trial.data(), rows, width, hg.data(), width, y.data());
          for (int64_t r = 0; r < rows; ++r) {
            double e = 0;
            for (int64_t i = 0; i < width; ++i) {
              const size_t at = size_t(r * width + i);
              e += double(trial[at]) * (double(y[at]) + 2.0 * double(cross[at]));
            }
            error[size_t(r)] = e;
          }
        });
    for (int64_t r = 0; r < rows; ++r) {
      const GroupParams p = ranges.grid(r, best[size_t(r)]);
      grids[size_t(r * groups + g)] = p;
      for (int64_t i = 0; i < width; ++i) {
        const float v = w[r * cols + c0 + i];
        dq[size_t(r * cols + c0 + i)] = v - round_trip(traits, v, p);
      }
    }
  }
  return grids;
}

UnpackedMatrix awq_quantize_matrix(Backend& backend, const float* w, int64_t rows, int64_t cols,
                                   const std::vector<float>& h, const QuantSpec& spec, const AwqOptions& options) {
  if (options.clip_search == ClipSearch::Off) return quantize_rtn(w, rows, cols, spec);
  return quantize_on_grids(w, rows, cols, spec, awq_search_clip(backend, w, rows, cols, h, spec, options));
}

Result<AwqResult> awq_quantize(Backend& backend, FloatWeights& weights, const ModelConfig& config,
                               const CalibrationStats& stats, const QuantSpec& spec,
                               const AwqOptions& options) {
  for (const auto& [name, input] : stats.by_tensor) {
    if (!weights.has(name)) return make_error("awq: calibrated tensor '" + name + "' is not a model weight");
    BRISK_TRY(check_grid_spec(spec, weights.cols(name), "awq: tensor '" + name + "'"));
  }
  AwqResult result;
  // Scales of every group searched on the weights as they stand, then folded: a group only
  // touches its consumers' columns and its producer's rows, which row-wise grids do not mind.
  std::map<std::string, std::vector<float>> input_scale;  // consumer -> s over its input channels
  BRISK_ASSIGN(groups, scale_groups(config, Folds::All));
  for (const ScaleGroup& group : groups) {
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
    UnpackedMatrix q =
        awq_quantize_matrix(backend, w.data(), rows, cols, scaled_hessian(input->xtx, s, cols), spec, options);
    std::copy(q.dequantized.begin(), q.dequantized.end(), w.begin());  // the model may point at w
    result.matrices[name] = std::move(q);
  }
  return result;
}

}  // namespace brisk::calib
