#include "compress/prune_structured.h"

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

bool cut_by(StructuredUnit unit, Role r) {
  if (unit == StructuredUnit::Neurons) return r == Role::MlpGate || r == Role::MlpUp || r == Role::MlpDown;
  return r == Role::AttnQ || r == Role::AttnK || r == Role::AttnV || r == Role::AttnO;
}

// The indices along a tensor's split axis that the kept units own: a neuron is one index; a kv
// group g is kv head g (k, v: head_dim rows each) and its query heads (q rows, o columns).
std::vector<int64_t> owned_indices(StructuredUnit unit, Role role, const std::vector<int64_t>& kept, const ModelConfig& c) {
  if (unit == StructuredUnit::Neurons) return kept;
  const int64_t hd = c.head_dim, group = c.n_heads / c.n_kv_heads;
  const bool query_side = role == Role::AttnQ || role == Role::AttnO;
  std::vector<int64_t> out;
  for (int64_t g : kept)
    for (int64_t h = query_side ? g * group : g; h < (query_side ? (g + 1) * group : g + 1); ++h)
      for (int64_t i = 0; i < hd; ++i) out.push_back(h * hd + i);
  return out;
}

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

Result<StructuredUnit> parse_structured_unit(const std::string& name) {
  if (name == "neurons") return StructuredUnit::Neurons;
  if (name == "heads") return StructuredUnit::Heads;
  return make_error("--structured: '" + name + "' is not neurons or heads (layers and hidden are not done yet)");
}

Result<StructuredPruneReport> prune_structured(const fs::path& in, const fs::path& out, const std::vector<int32_t>& tokens,
                                               const StructuredPruneOptions& o) {
  if (!(o.ratio > 0 && o.ratio < 1)) return make_error("--ratio must be between 0 and 1");
  BRISK_TRY(require_empty_output(out));
  BRISK_TRY(require_float_model(in, "prune"));
  BRISK_ASSIGN(config_json, read_json_file(in / "config.json"));
  BRISK_ASSIGN(config, parse_model_config(config_json, (in / "config.json").string()));
  const ShapeKeys& keys = config.arch->shape_keys;
  const bool heads = o.unit == StructuredUnit::Heads;
  if (!*(heads ? keys.heads : keys.ffn))
    return make_error("structured pruning does not know the widths of model_type '" + config.model_type + "'");
  // Heads change hidden / heads: the config must state head_dim (and grouped kv heads) itself.
  if (heads && (!*keys.head_dim || !*keys.kv_heads))
    return make_error("pruning heads needs a family whose config states head_dim and kv heads; '" + config.model_type +
                      "' derives them");
  const std::vector<TensorSpec> specs = config.arch->tensors(config);
  for (const TensorSpec& s : specs)
    if (s.role == (heads ? Role::AttnQkv : Role::MlpGateUp))
      return make_error("'" + s.name + "' is a fused matrix: not pruned structurally yet");

  CpuBackend cpu(o.threads);
  CalibratingBackend capture(cpu);
  BRISK_ASSIGN(model, load_for_calibration(in, capture, o.calibration));
  FloatWeights weights = FloatWeights::copy_from(*model);
  // The matrix whose input the score reads (down / o), and the one scored without text (up / v).
  const Role consumer = heads ? Role::AttnO : Role::MlpDown, producer = heads ? Role::AttnV : Role::MlpUp;
  CalibrationStats stats;
  if (!tokens.empty()) {
    CalibrationOptions c = o.calibration;
    c.select = [consumer](const TensorSpec& s) { return s.role == consumer && s.part == Part::Weight; };
    BRISK_ASSIGN(found, calibrate(*model, capture, tokens, c));
    stats = std::move(found);
  }

  StructuredPruneReport report;
  report.layers = config.n_layers;
  report.calibration_tokens = stats.tokens;
  const int64_t units = heads ? config.n_kv_heads : config.intermediate_size;
  const int64_t m = heads ? 1 : std::max<int64_t>(o.multiple, 1);
  const int64_t kept = std::max(m, int64_t(std::floor(double(units) * (1.0 - o.ratio) / double(m))) * m);
  if (kept >= units)
    return make_error("--ratio " + std::to_string(o.ratio) + " removes no whole " + (heads ? "kv group" : "multiple of " + std::to_string(m) + " channels") +
                      " of " + std::to_string(units));
  report.units_before = units;
  report.units_after = kept;

  // Per layer: the kept units, in their original order.
  std::map<int64_t, std::vector<int64_t>> keep;
  std::map<std::pair<int64_t, Role>, std::string> names;
  for (const TensorSpec& s : specs)
    if (cut_by(o.unit, s.role) && s.part == Part::Weight) names[{s.layer, s.role}] = s.name;
  for (int64_t l = 0; l < config.n_layers; ++l) {
    const std::string& into = names[{l, consumer}];
    const std::string& from = names[{l, producer}];
    if (into.empty() || from.empty()) return make_error("layer " + std::to_string(l) + " lacks the projections to score");
    const std::vector<float>& wc = weights.at(into);  // [d, width]: the unit's columns
    const std::vector<float>& wp = weights.at(from);  // [width', d]: the unit's rows
    const InputStats* act = stats.find(into);
    std::vector<double> score(static_cast<size_t>(units));
    for (int64_t u = 0; u < units; ++u) {
      const std::vector<int64_t> columns = owned_indices(o.unit, consumer, {u}, config);
      const std::vector<int64_t> rows = owned_indices(o.unit, producer, {u}, config);
      double importance = 0, column_energy = 0;
      for (int64_t j : columns) {
        const double n = column_norm(wc, weights.rows(into), weights.cols(into), j);
        column_energy += n * n;
        if (act) importance += act->mean_abs(j);
      }
      if (!act)
        for (int64_t r : rows) importance += row_norm(wp, weights.cols(from), r);
      score[size_t(u)] = importance * std::sqrt(column_energy);
    }
    std::vector<int64_t> order(static_cast<size_t>(units));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[size_t(a)] > score[size_t(b)]; });
    order.resize(size_t(kept));
    std::sort(order.begin(), order.end());
    keep[l] = std::move(order);
  }

  // The source's tensors, the cut roles along their split axis (in the stored layout: a Conv1D
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
    if (it != by_name.end() && cut_by(o.unit, it->second->role) && it->second->split() != SplitAxis::None) {
      const TensorSpec& s = *it->second;
      if (is_block_dtype(t.dtype)) return make_error("'" + name + "' is quantized: prune the float model first");
      // Columns: output features (rows of [out, in]); Rows: input features (its columns).
      int dim = s.split() == SplitAxis::Columns ? 0 : 1;
      if (s.kind == TensorKind::TransposedMatrix) dim = 1 - dim;
      if (t.shape.size() == 1) dim = 0;
      const std::vector<int64_t> indices = owned_indices(o.unit, s.role, keep[s.layer], config);
      owned.push_back(select(t, dim, indices));
      t.data = owned.back().data();
      t.shape[size_t(dim)] = int64_t(indices.size());
    }
    report.params_after += uint64_t(t.numel());
    tensors.push_back({name, t});
  }
  if (heads) {
    config_json[keys.heads] = kept * (config.n_heads / config.n_kv_heads);
    config_json[keys.kv_heads] = kept;
    config_json[keys.head_dim] = config.head_dim;
  } else {
    config_json[keys.ffn] = kept;
  }
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
