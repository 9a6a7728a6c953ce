#include "compress/smoothquant.h"

#include <cmath>
#include <limits>

#include "compress/calib_linalg.h"

namespace brisk::calib {

namespace {

// The consumers' W8A8 output error on the samples with smoothing s, against the fp32 products.
double w8a8_error(Backend& backend, FloatWeights& weights, const ScaleGroup& group, const InputStats& input,
                  const std::vector<std::vector<float>>& reference, const std::vector<float>& s,
                  const SmoothQuantOptions& options) {
  const int64_t n = input.sample_rows(), k = input.width;
  std::vector<float> x(input.samples);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i) x[size_t(r * k + i)] /= s[size_t(i)];
  fake_quantize_rows(x.data(), n, k);
  double error = 0;
  std::vector<float> scaled, y;
  for (size_t c = 0; c < group.consumers.size(); ++c) {
    const std::vector<float>& w = weights.at(group.consumers[c]);
    const int64_t rows = weights.rows(group.consumers[c]);
    scaled.resize(w.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < k; ++i) scaled[size_t(r * k + i)] = w[size_t(r * k + i)] * s[size_t(i)];
    const UnpackedMatrix q = quantize_rtn(scaled.data(), rows, k, kSmoothQuantWeights);
    y.resize(size_t(n * rows));
    matmul_host(backend, x.data(), n, k, q.dequantized.data(), rows, y.data());
    for (size_t i = 0; i < y.size(); ++i) {
      const double d = double(y[i]) - double(reference[c][i]);
      error += d * d;
    }
  }
  return error;
}

}  // namespace

std::vector<float> smoothing_scales(const std::vector<float>& act_max, const std::vector<float>& weight_max,
                                    float alpha) {
  std::vector<float> s(act_max.size());
  for (size_t j = 0; j < s.size(); ++j) {
    const double a = std::pow(std::max(double(act_max[j]), 1e-5), double(alpha));
    const double w = std::pow(std::max(double(weight_max[j]), 1e-5), 1.0 - double(alpha));
    s[j] = float(std::max(a / w, 1e-5));
  }
  return s;
}

void fake_quantize_rows(float* x, int64_t rows, int64_t k) {
  std::vector<uint8_t> codes(static_cast<size_t>(k));
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * k;
    const float scale = quantize_activation_row_u8(row, k, k, codes.data());
    for (int64_t i = 0; i < k; ++i) row[i] = float(int(codes[size_t(i)]) - 128) * scale;
  }
}

Result<SmoothQuantResult> smoothquant(Backend& backend, FloatWeights& weights, const ModelConfig& config,
                                      const CalibrationStats& stats, const SmoothQuantOptions& options) {
  for (const auto& [name, input] : stats.by_tensor)
    if (!weights.has(name)) return make_error("smoothquant: calibrated tensor '" + name + "' is not a model weight");
  if (options.alpha_step <= 0 || options.alpha_min > options.alpha_max)
    return make_error("smoothquant: alpha range " + std::to_string(options.alpha_min) + ".." +
                      std::to_string(options.alpha_max) + " step " + std::to_string(options.alpha_step) + " is empty");
  SmoothQuantResult result;
  BRISK_ASSIGN(groups, scale_groups(config, Folds::NormOnly));
  for (const ScaleGroup& group : groups) {
    const InputStats* input = stats.find(group.consumers[0]);
    if (!input) continue;
    if (input->sample_rows() == 0)
      return make_error("smoothquant: no activation samples for '" + group.consumers[0] +
                        "' (calibrate with sample_rows > 0)");
    const int64_t k = input->width, n = input->sample_rows();
    std::vector<float> weight_max(size_t(k), 0.0f);
    std::vector<std::vector<float>> reference;
    for (const std::string& name : group.consumers) {
      const std::vector<float>& w = weights.at(name);
      const int64_t rows = weights.rows(name);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < k; ++i)
          weight_max[size_t(i)] = std::max(weight_max[size_t(i)], std::fabs(w[size_t(r * k + i)]));
      reference.emplace_back(size_t(n * rows));
      matmul_host(backend, input->samples.data(), n, k, w.data(), rows, reference.back().data());
    }
    double best = std::numeric_limits<double>::infinity();
    float best_alpha = options.alpha_min;
    for (float alpha = options.alpha_min; alpha <= options.alpha_max + 1e-6f; alpha += options.alpha_step) {
      const double e = w8a8_error(backend, weights, group, *input, reference,
                                  smoothing_scales(input->abs_max, weight_max, alpha), options);
      if (e < best) {
        best = e;
        best_alpha = alpha;
      }
    }
    std::vector<float> s = smoothing_scales(input->abs_max, weight_max, best_alpha);
    fold_scales(weights, group, s);
    result.alpha[group.consumers[0]] = best_alpha;
    result.scales[group.consumers[0]] = std::move(s);
  }
  for (const auto& [name, input] : stats.by_tensor) {
    std::vector<float>& w = weights.at(name);
    UnpackedMatrix q = quantize_rtn(w.data(), weights.rows(name), weights.cols(name), kSmoothQuantWeights);
    std::copy(q.dequantized.begin(), q.dequantized.end(), w.begin());  // the model may point at w
    result.matrices[name] = std::move(q);
  }
  return result;
}

}  // namespace brisk::calib
