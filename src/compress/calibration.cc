#include "compress/calibration.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace brisk::calib {

const InputStats* CalibrationStats::find(const std::string& tensor_name) const {
  auto it = by_tensor.find(tensor_name);
  return it == by_tensor.end() ? nullptr : it->second.get();
}

void CalibratingBackend::start_capture(std::unordered_map<const void*, std::string> weights,
                                       int64_t sample_stride, int64_t sample_cap, InputStatistics statistics) {
  names_ = std::move(weights);
  statistics_ = statistics;
  stats_.clear();
  last_stats_.reset();
  last_input_.clear();
  sample_stride_ = std::max<int64_t>(sample_stride, 1);
  sample_cap_ = sample_cap;
  capturing_ = true;
}

std::map<std::string, std::shared_ptr<InputStats>> CalibratingBackend::finish_capture() {
  capturing_ = false;
  std::map<std::string, std::shared_ptr<InputStats>> out;
  for (auto& [ptr, stats] : stats_) out[names_.at(ptr)] = stats;
  stats_.clear();
  last_stats_.reset();
  last_input_ = {};
  transposed_ = {};
  gram_ = {};
  return out;
}

void CalibratingBackend::matmul(const float* x, int64_t m, int64_t k, const Tensor& w,
                                const float* bias, float* y) {
  if (capturing_ && names_.count(w.data)) {
    std::shared_ptr<InputStats>& slot = stats_[w.data];
    const size_t n = size_t(m * k);
    const float* host_x = x;  // the statistics are summed on the host
    if (inner().device() != Device::CPU) {
      host_input_.resize(n);
      inner().copy_to_host(host_input_.data(), x, n);
      host_x = host_input_.data();
    }
    // q/k/v (and gate/up) read the same activations back to back: record them once, share them.
    const bool same_input = last_stats_ && last_m_ == m && last_input_.size() == n &&
                            std::memcmp(last_input_.data(), host_x, n * sizeof(float)) == 0;
    if (!same_input || (slot && slot != last_stats_)) {
      if (!slot) {
        slot = std::make_shared<InputStats>();
        slot->width = k;
        if (statistics_ == InputStatistics::Full) slot->xtx.assign(size_t(k * k), 0.0);
        slot->abs_sum.assign(size_t(k), 0.0);
        slot->sq_sum.assign(size_t(k), 0.0);
        slot->abs_max.assign(size_t(k), 0.0f);
      }
      BRISK_CHECK(slot->width == k, "calibration: a weight was fed inputs of two widths");
      record(host_x, m, k, *slot);
      last_input_.assign(host_x, host_x + n);
      last_m_ = m;
      last_stats_ = slot;
    } else if (!slot) {
      slot = last_stats_;
    }
  }
  inner().matmul(x, m, k, w, bias, y);
}

void CalibratingBackend::record(const float* x, int64_t m, int64_t k, InputStats& s) {
  for (int64_t r = 0; r < m; ++r) {
    const float* row = x + r * k;
    for (int64_t i = 0; i < k; ++i) {
      const float a = std::fabs(row[i]);
      s.abs_sum[size_t(i)] += a;
      s.sq_sum[size_t(i)] += double(a) * a;
      s.abs_max[size_t(i)] = std::max(s.abs_max[size_t(i)], a);
    }
    if ((s.rows + r) % sample_stride_ == 0 && s.sample_rows() < sample_cap_)
      s.samples.insert(s.samples.end(), row, row + k);
  }
  s.rows += m;
  if (s.xtx.empty()) return;  // InputStatistics::PerChannel
  // x^T x through the inner backend's matmul: (x^T)[k, m] times its own transpose. fp32 sums over
  // one call's rows (at most a window), then double across calls.
  transposed_.resize(size_t(k * m));
  for (int64_t r = 0; r < m; ++r)
    for (int64_t i = 0; i < k; ++i) transposed_[size_t(i * m + r)] = x[r * k + i];
  gram_.resize(size_t(k * k));
  const Tensor xt{transposed_.data(), DType::F32, {k, m}};
  if (inner().device() == Device::CPU) {
    inner().matmul(transposed_.data(), k, m, xt, nullptr, gram_.data());
  } else {  // the device's product on its own copies (a device matmul reads only device memory)
    const Tensor weight = inner().upload(xt);
    Buffer rows = inner().allocate(transposed_.size()), gram = inner().allocate(gram_.size());
    inner().copy_to_device(rows.data(), transposed_.data(), transposed_.size());
    inner().matmul(rows.data(), k, m, weight, nullptr, gram.data());
    inner().copy_to_host(gram_.data(), gram.data(), gram_.size());
    inner().release_weight(weight);
  }
  for (size_t i = 0; i < gram_.size(); ++i) s.xtx[i] += double(gram_[i]);
}

std::vector<std::string> calibrated_matrices(Model& model,
                                             const std::function<bool(const TensorSpec&)>& select) {
  std::vector<std::string> names;
  model.visit_tensors([&](const TensorSpec& spec, Tensor& slot) {
    if (!spec.is_matrix() || slot.empty() || spec.role == Role::Head) return;
    if (!select || select(spec)) names.push_back(spec.name);
  });
  return names;
}

Result<std::unique_ptr<Model>> load_for_calibration(const std::filesystem::path& dir, CalibratingBackend& backend,
                                                    const CalibrationOptions& options) {
  ModelOptions model_options;
  model_options.max_rows = std::min<int64_t>(options.window, 512);
  model_options.context = options.window;
  if (options.final_norm_rows != LogitRows::None) model_options.decoder_output = ModelOutput::HiddenStates;
  return load_model(dir, backend, model_options);
}

Result<CalibrationStats> calibrate(Model& model, CalibratingBackend& backend,
                                   const std::vector<int32_t>& tokens,
                                   const CalibrationOptions& options) {
  const int64_t window = options.window;
  if (window < 1 || window > model.context())
    return make_error("calibration window of " + std::to_string(window) +
                      " tokens does not fit the model's context of " + std::to_string(model.context()));
  // Windows spread evenly over the whole text rather than its first max_tokens: a text in
  // chronological order (speeches by year) otherwise calibrates on one era only, and the
  // Hessians GPTQ fits to it generalise worse than RTN (GPTQ's reference samples random windows).
  const int64_t available = int64_t(tokens.size()) / window;
  CalibrationStats result;
  result.windows = available;
  if (options.max_tokens > 0) result.windows = std::min(available, options.max_tokens / window);
  result.tokens = result.windows * window;
  if (result.tokens < std::max<int64_t>(options.min_tokens, 1))
    return make_error("too little calibration text: " + std::to_string(tokens.size()) +
                      " tokens give " + std::to_string(result.tokens) + " in whole windows of " +
                      std::to_string(window) + "; need at least " + std::to_string(options.min_tokens));
  std::vector<int64_t> starts(size_t(result.windows));
  for (int64_t w = 0; w < result.windows; ++w) starts[size_t(w)] = (w * available / result.windows) * window;
  const int64_t vocab = model.config().vocab_size;
  for (int64_t start : starts)
    for (int64_t i = start; i < start + window; ++i)
      if (tokens[size_t(i)] < 0 || tokens[size_t(i)] >= vocab)
        return make_error("calibration token id " + std::to_string(tokens[size_t(i)]) +
                          " is outside the model's vocabulary of " + std::to_string(vocab));

  std::unordered_map<const void*, std::string> names;
  const std::vector<std::string> wanted = calibrated_matrices(model, options.select);
  model.visit_tensors([&](const TensorSpec& spec, Tensor& slot) {
    if (std::find(wanted.begin(), wanted.end(), spec.name) != wanted.end()) names[slot.data] = spec.name;
  });
  const int64_t stride = options.sample_rows > 0 ? std::max<int64_t>(result.tokens / options.sample_rows, 1) : 1;
  backend.start_capture(std::move(names), stride, options.sample_rows, options.statistics);

  KvCache cache = model.make_cache(window);
  const int64_t chunk = model.max_rows();
  std::vector<float> outputs;
  if (options.final_norm_rows != LogitRows::None) outputs.resize(size_t(chunk * model.output_width()));
  for (int64_t start_token : starts) {
    const int32_t* ids = tokens.data() + start_token;
    for (int64_t start = 0; start < window; start += chunk)
      model.forward(ids + start, std::min(chunk, window - start), start, cache, options.final_norm_rows,
                    outputs.empty() ? nullptr : outputs.data());
  }
  result.by_tensor = backend.finish_capture();
  return result;
}

}  // namespace brisk::calib
