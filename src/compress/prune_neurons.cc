#include "compress/prune_neurons.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>

#include "backends/cpu/cpu_backend.h"
#include "compress/calib_weights.h"
#include "core/dtype.h"
#include "formats/json_file.h"
#include "formats/model_folder.h"
#include "formats/safetensors.h"
#include "formats/weight_store.h"
#include "models/model_config.h"

namespace brisk::calib {

namespace fs = std::filesystem;

namespace {

bool is_mlp_channel_role(Role r) { return r == Role::MlpGate || r == Role::MlpUp || r == Role::MlpDown; }

double column_norm(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t c) {
  double s = 0;
  for (int64_t r = 0; r < rows; ++r) s += double(w[size_t(r * cols + c)]) * w[size_t(r * cols + c)];
  return std::sqrt(s);
}
double row_norm(const std::vector<float>& w, int64_t cols, int64_t r) {
  double s = 0;
  for (int64_t c = 0; c < cols; ++c) s += double(w[size_t(r * cols + c)]) * w[size_t(r * cols + c)];
  return std::sqrt(s);
}

// A stored tensor with only `keep` of its indices along `axis` (0: rows of the stored layout, 1:
// columns), bytes copied as they are (any float dtype).
std::vector<uint8_t> select(const Tensor& t, int axis, const std::vector<int64_t>& keep) {
  const size_t es = dtype_size(t.dtype);
  const auto* src = static_cast<const uint8_t*>(t.data);
  const int64_t rows = t.shape[0], cols = t.shape.size() > 1 ? t.shape[1] : 1;
  std::vector<uint8_t> out;
  if (axis == 0) {
    out.resize(keep.size() * size_t(cols) * es);
    for (size_t i = 0; i < keep.size(); ++i)
      std::memcpy(out.data() + i * size_t(cols) * es, src + size_t(keep[i]) * size_t(cols) * es, size_t(cols) * es);
  } else {
    out.resize(size_t(rows) * keep.size() * es);
    for (int64_t r = 0; r < rows; ++r)
      for (size_t i = 0; i < keep.size(); ++i)
        std::memcpy(out.data() + (size_t(r) * keep.size() + i) * es, src + (size_t(r * cols) + size_t(keep[i])) * es, es);
  }
  return out;
}

}  // namespace

Result<NeuronPruneReport> prune_neurons(const fs::path& in, const fs::path& out, const std::vector<int32_t>& tokens,
                                        const NeuronPruneOptions& o) {
  if (!(o.ratio > 0 && o.ratio < 1)) return make_error("--ratio must be between 0 and 1");
  if (fs::exists(out) && !fs::is_empty(out)) return make_error(out.string() + " is not empty");
  BRISK_ASSIGN(config_json, read_json_file(in / "config.json"));
  BRISK_ASSIGN(config, parse_model_config(config_json, (in / "config.json").string()));
  const ShapeKeys& keys = config.arch->shape_keys;
  if (!*keys.ffn) return make_error("structured pruning does not know the MLP width of model_type '" + config.model_type + "'");
  const std::vector<TensorSpec> specs = config.arch->tensors(config);
  for (const TensorSpec& s : specs)
    if (s.role == Role::MlpGateUp)
      return make_error("'" + s.name + "': a fused gate/up matrix is not pruned by neurons yet");

  CpuBackend cpu(o.threads);
  CalibratingBackend capture(cpu);
  ModelOptions model_options;
  model_options.max_rows = std::min<int64_t>(o.calibration.window, 512);
  model_options.context = o.calibration.window;
  BRISK_ASSIGN(model, load_model(in, capture, model_options));
  FloatWeights weights = FloatWeights::copy_from(*model);
  CalibrationStats stats;
  if (!tokens.empty()) {
    CalibrationOptions c = o.calibration;
    c.select = [](const TensorSpec& s) { return s.role == Role::MlpDown && s.part == Part::Weight; };
    BRISK_ASSIGN(found, calibrate(*model, capture, tokens, c));
    stats = std::move(found);
  }

  NeuronPruneReport report;
  report.width_before = config.intermediate_size;
  report.layers = config.n_layers;
  report.calibration_tokens = stats.tokens;
  const int64_t ff = config.intermediate_size, m = std::max<int64_t>(o.multiple, 1);
  const int64_t kept = std::max(m, int64_t(std::floor(double(ff) * (1.0 - o.ratio) / double(m))) * m);
  if (kept >= ff) return make_error("--ratio " + std::to_string(o.ratio) + " removes no whole multiple of " +
                                    std::to_string(m) + " channels of " + std::to_string(ff));
  report.width_after = kept;

  // Per layer: the kept channels, in their original order.
  std::map<int64_t, std::vector<int64_t>> keep;
  std::map<std::pair<int64_t, Role>, std::string> names;
  for (const TensorSpec& s : specs)
    if (is_mlp_channel_role(s.role) && s.part == Part::Weight) names[{s.layer, s.role}] = s.name;
  for (int64_t l = 0; l < config.n_layers; ++l) {
    const std::string& down = names[{l, Role::MlpDown}];
    const std::string& up = names[{l, Role::MlpUp}];
    if (down.empty() || up.empty()) return make_error("layer " + std::to_string(l) + " has no up / down projection");
    const std::vector<float>& wd = weights.at(down);  // [d, ff]
    const std::vector<float>& wu = weights.at(up);    // [ff, d]
    const InputStats* act = stats.find(down);
    std::vector<double> score(static_cast<size_t>(ff));
    for (int64_t j = 0; j < ff; ++j) {
      const double importance = act ? act->mean_abs(j) : row_norm(wu, weights.cols(up), j);
      score[size_t(j)] = importance * column_norm(wd, weights.rows(down), ff, j);
    }
    std::vector<int64_t> order(static_cast<size_t>(ff));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[size_t(a)] > score[size_t(b)]; });
    order.resize(size_t(kept));
    std::sort(order.begin(), order.end());
    keep[l] = std::move(order);
  }

  // The source's tensors, the MLP's cut along their split axis (in the stored layout: a Conv1D
  // matrix is stored [in, out], so its axes swap).
  BRISK_ASSIGN(store, WeightStore::open_dir(in));
  std::map<std::string, const TensorSpec*> by_name;
  for (const TensorSpec& s : specs) by_name[s.name] = &s;
  std::vector<NamedTensor> tensors;
  std::vector<std::vector<uint8_t>> owned;
  for (const auto& [name, stored] : store.all()) {
    Tensor t = stored.tensor;
    report.params_before += uint64_t(t.numel());
    auto it = by_name.find(name);
    if (it != by_name.end() && is_mlp_channel_role(it->second->role)) {
      const TensorSpec& s = *it->second;
      const SplitAxis axis = s.split();
      if (axis != SplitAxis::None) {
        if (is_block_dtype(t.dtype)) return make_error("'" + name + "' is quantized: prune the float model first");
        // Columns: output features (rows of [out, in]); Rows: input features (its columns).
        int dim = axis == SplitAxis::Columns ? 0 : 1;
        if (s.kind == TensorKind::TransposedMatrix) dim = 1 - dim;
        if (t.shape.size() == 1) dim = 0;
        owned.push_back(select(t, dim, keep[s.layer]));
        t.data = owned.back().data();
        t.shape[size_t(dim)] = kept;
      }
    }
    report.params_after += uint64_t(t.numel());
    tensors.push_back({name, t});
  }
  config_json[keys.ffn] = kept;
  if (auto check = parse_model_config(config_json, (out / "config.json").string()); !check) return check.error();
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return make_error("creating " + out.string() + ": " + ec.message());
  BRISK_TRY(write_text_file(out / "config.json", config_json.dump(2) + "\n"));
  BRISK_TRY(copy_model_side_files(in, out, ConfigFile::Skip));
  BRISK_TRY(write_safetensors(out / "model.safetensors", tensors, {{"format", "pt"}}));
  return report;
}

}  // namespace brisk::calib
