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
#include "models/layer_subset.h"
#include "models/model_config.h"

namespace brisk::calib {

namespace fs = std::filesystem;

namespace {

struct UnitName {
  StructuredUnit unit;
  const char* name;     // as --structured takes it
  const char* counted;  // what its count measures
};
constexpr UnitName kUnitNames[] = {{StructuredUnit::Neurons, "neurons", "MLP width"},
                                   {StructuredUnit::Heads, "heads", "kv heads"},
                                   {StructuredUnit::Layers, "layers", "layers"},
                                   {StructuredUnit::Hidden, "hidden", "model width"}};

// Neurons and heads: the roles a layer's unit spans.
bool cut_by(StructuredUnit unit, Role r) {
  if (unit == StructuredUnit::Neurons) return r == Role::MlpGate || r == Role::MlpUp || r == Role::MlpDown;
  return r == Role::AttnQ || r == Role::AttnK || r == Role::AttnV || r == Role::AttnO;
}

// Hidden: the axis of a tensor ([out, in] for matrices) that runs along the model width, or -1. Embedding tables
// and the head hold it in their columns, the model-width norms are it; a linear layer holds it on
// the side its tensor-parallel split does not cut (the inputs of the column-split q/k/v/gate/up,
// the outputs of the row-split o/down, and so o/down's bias).
int hidden_axis(const TensorSpec& s) {
  switch (s.role) {
    case Role::TokenEmbed:
    case Role::PositionEmbed:
    case Role::TokenTypeEmbed:
      return 1;
    case Role::EmbedNorm:
    case Role::AttnNorm:
    case Role::AttnPostNorm:
    case Role::MlpNorm:
    case Role::MlpPostNorm:
    case Role::FinalNorm:
      return 0;
    default:
      break;
  }
  if (s.part == Part::Bias) return (s.role == Role::AttnO || s.role == Role::MlpDown) ? 0 : -1;
  if (s.split() == SplitAxis::Columns) return 1;
  if (s.split() == SplitAxis::Rows) return 0;
  return -1;
}

// An axis of the [out, in] matrix (0: outputs, 1: inputs) as stored: Conv1D matrices lie [in, out].
int stored_axis(const TensorSpec& s, int axis) { return s.kind == TensorKind::TransposedMatrix ? 1 - axis : axis; }

// The count kept of `units` when `ratio` of them go, rounded to the nearest multiple of `multiple`,
// at least one.
int64_t kept_count(int64_t units, double ratio, int64_t multiple) {
  const int64_t m = std::max<int64_t>(multiple, 1);
  return std::max(m, int64_t(std::llround(double(units) * (1.0 - ratio) / double(m))) * m);
}

// The `kept` highest-scoring indices, in their original order.
std::vector<int64_t> top_indices(const std::vector<double>& score, int64_t kept) {
  std::vector<int64_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[size_t(a)] > score[size_t(b)]; });
  order.resize(size_t(kept));
  std::sort(order.begin(), order.end());
  return order;
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


// The written folder's tensors: the source's, whole, cut along one axis, or renamed.
struct PrunedTensors {
  std::vector<NamedTensor> tensors;
  std::vector<std::vector<uint8_t>> owned;  // the cut tensors' bytes (moving a vector keeps its data)
  uint64_t params = 0;

  void add(const std::string& name, const Tensor& t) {
    params += uint64_t(t.numel());
    tensors.push_back({name, t});
  }
  // `axis` of the stored layout (a vector: its only one) kept at `indices`, bytes copied as they are.
  Status add_cut(const std::string& name, Tensor t, int axis, const std::vector<int64_t>& indices) {
    if (is_block_dtype(t.dtype)) return make_error("'" + name + "' is quantized: prune the float model first");
    if (t.shape.size() == 1) axis = 0;
    owned.push_back(select(t, axis, indices));
    t.data = owned.back().data();
    t.shape[size_t(axis)] = int64_t(indices.size());
    add(name, t);
    return ok_status();
  }
};

// Neurons / heads: each layer's kept units, scored as the header says.
Result<std::map<int64_t, std::vector<int64_t>>> choose_layer_units(StructuredUnit unit, const ModelConfig& config,
                                                           const std::vector<TensorSpec>& specs,
                                                           const FloatWeights& weights, const CalibrationStats& stats,
                                                           int64_t units, int64_t kept) {
  const bool heads = unit == StructuredUnit::Heads;
  // The matrix whose input the score reads (down / o), and the one scored without text (up / v).
  const Role consumer = heads ? Role::AttnO : Role::MlpDown, producer = heads ? Role::AttnV : Role::MlpUp;
  std::map<std::pair<int64_t, Role>, std::string> names;
  for (const TensorSpec& s : specs)
    if (cut_by(unit, s.role) && s.part == Part::Weight) names[{s.layer, s.role}] = s.name;
  std::map<int64_t, std::vector<int64_t>> keep;
  for (int64_t l = 0; l < config.n_layers; ++l) {
    const std::string& into = names[{l, consumer}];
    const std::string& from = names[{l, producer}];
    if (into.empty() || from.empty()) return make_error("layer " + std::to_string(l) + " lacks the projections to score");
    const std::vector<float>& wc = weights.at(into);  // [d, width]: the unit's columns
    const std::vector<float>& wp = weights.at(from);  // [width', d]: the unit's rows
    const InputStats* act = stats.find(into);
    std::vector<double> score(static_cast<size_t>(units));
    for (int64_t u = 0; u < units; ++u) {
      double importance = 0, column_energy = 0;
      for (int64_t j : owned_indices(unit, consumer, {u}, config)) {
        const double n = column_norm(wc, weights.rows(into), weights.cols(into), j);
        column_energy += n * n;
        if (act) importance += act->mean_abs(j);
      }
      if (!act)
        for (int64_t r : owned_indices(unit, producer, {u}, config)) importance += row_norm(wp, weights.cols(from), r);
      score[size_t(u)] = importance * std::sqrt(column_energy);
    }
    keep[l] = top_indices(score, kept);
  }
  return keep;
}

// Hidden: each model-width channel's score, as the header says.
std::vector<double> hidden_channel_scores(const ModelConfig& config, const std::vector<TensorSpec>& specs,
                                          const FloatWeights& weights, const CalibrationStats& stats) {
  const int64_t d = config.hidden_size;
  std::vector<double> score(size_t(d), 0.0);
  if (stats.tokens > 0) {
    std::vector<const InputStats*> seen;  // q/k/v (gate/up) share one input
    for (const auto& [name, input] : stats.by_tensor) {
      if (std::find(seen.begin(), seen.end(), input.get()) != seen.end()) continue;
      seen.push_back(input.get());
      for (int64_t c = 0; c < d; ++c) score[size_t(c)] += input->mean_abs(c);
    }
    return score;
  }
  for (const TensorSpec& s : specs) {
    if (!s.is_matrix() || s.part != Part::Weight || !weights.has(s.name)) continue;
    const int axis = hidden_axis(s);
    if (axis < 0) continue;
    const std::vector<float>& w = weights.at(s.name);  // [out, in]
    for (int64_t c = 0; c < d; ++c) {
      const double n = axis == 1 ? column_norm(w, weights.rows(s.name), weights.cols(s.name), c)
                                 : row_norm(w, weights.cols(s.name), c);
      score[size_t(c)] += n * n;
    }
  }
  return score;
}

// Layers: each layer's block influence, 1 - mean over calibration rows of cos(input, output) of
// the residual stream, read at the norms that open every layer and the final norm.
Result<std::vector<double>> block_influence(Model& model, CalibratingBackend& capture, const std::vector<int32_t>& tokens,
                                            CalibrationOptions calibration, int64_t& calibration_tokens) {
  const int64_t layers = model.config().n_layers;
  std::map<const void*, int64_t> boundary;  // norm weight -> the stream it reads: layer l's input, or layers
  model.visit_tensors([&](const TensorSpec& s, Tensor& slot) {
    if (s.part == Part::Weight && s.role == Role::AttnNorm) boundary[slot.data] = s.layer;
    if (s.part == Part::Weight && s.role == Role::FinalNorm) boundary[slot.data] = layers;
  });
  if (int64_t(boundary.size()) != layers + 1)
    return make_error("layer pruning reads each layer's input at its input norm; model_type '" +
                      model.config().model_type + "' does not open every layer with one");
  std::vector<double> cosine_sum(size_t(layers), 0.0);
  std::vector<int64_t> rows_seen(size_t(layers), 0);
  std::vector<float> previous;  // the stream at the last boundary seen, [rows, d]
  int64_t previous_at = -1;
  capture.observe_norm_inputs([&](const float* weight, const float* x, int64_t rows, int64_t d) {
    auto it = boundary.find(weight);
    if (it == boundary.end()) return;
    const int64_t at = it->second;
    if (at > 0 && previous_at == at - 1 && previous.size() == size_t(rows * d)) {
      for (int64_t r = 0; r < rows; ++r) {
        const float* a = previous.data() + r * d;
        const float* b = x + r * d;
        double ab = 0, aa = 0, bb = 0;
        for (int64_t i = 0; i < d; ++i) ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
        cosine_sum[size_t(at - 1)] += aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 1.0;
      }
      rows_seen[size_t(at - 1)] += rows;
    }
    previous.assign(x, x + rows * d);
    previous_at = at;
  });
  calibration.select = [](const TensorSpec&) { return false; };  // no matmul statistics
  calibration.final_norm_rows = LogitRows::All;
  auto stats = calibrate(model, capture, tokens, calibration);
  capture.observe_norm_inputs(nullptr);
  if (!stats) return stats.error();
  calibration_tokens = stats->tokens;
  std::vector<double> influence(static_cast<size_t>(layers));
  for (int64_t l = 0; l < layers; ++l) {
    if (rows_seen[size_t(l)] == 0)
      return make_error("layer " + std::to_string(l) + "'s output never reached the next norm: not a pre-norm decoder");
    influence[size_t(l)] = 1.0 - cosine_sum[size_t(l)] / double(rows_seen[size_t(l)]);
  }
  return influence;
}

// The config key a unit's count lives under.
const char* count_key(const ShapeKeys& keys, StructuredUnit unit) {
  switch (unit) {
    case StructuredUnit::Neurons: return keys.ffn;
    case StructuredUnit::Heads: return keys.kv_heads;
    case StructuredUnit::Layers: return keys.layers;
    case StructuredUnit::Hidden: return keys.hidden;
  }
  return "";
}

// The folder being pruned: its config (as JSON, edited into the output's) and its tensors.
struct Source {
  Json config_json;
  ModelConfig config;
  std::vector<TensorSpec> specs;
  std::map<std::string, const TensorSpec*> by_name;
  WeightStore store;
  std::string where;  // the output config's path, for errors

  const TensorSpec* spec_of(const std::string& name) const {
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : it->second;
  }
};

// Layers: the `kept` layers of highest block influence, renumbered in order; their tensors take the
// names the smaller config declares at their new index.
Status drop_layers(Source& src, Model& model, CalibratingBackend& capture, const std::vector<int32_t>& tokens,
                   const CalibrationOptions& calibration, int64_t kept, StructuredPruneReport& report,
                   PrunedTensors& pruned) {
  const ShapeKeys& keys = src.config.arch->shape_keys;
  Json& config_json = src.config_json;
  const int64_t units = src.config.n_layers;
  BRISK_ASSIGN(influence, block_influence(model, capture, tokens, calibration, report.calibration_tokens));
  report.layer_scores = influence;
  const std::vector<int64_t> keep = top_indices(influence, kept);
  std::vector<int64_t> renumbered(size_t(units), -1);
  for (size_t i = 0; i < keep.size(); ++i) renumbered[size_t(keep[i])] = int64_t(i);
  for (int64_t l = 0; l < units; ++l)
    if (renumbered[size_t(l)] < 0) report.removed_layers.push_back(l);
  config_json[keys.layers] = kept;
  if (config_json.contains("layer_types") && config_json["layer_types"].is_array() &&
      int64_t(config_json["layer_types"].size()) == units) {
    Json types = Json::array();
    for (int64_t l : keep) types.push_back(config_json["layer_types"][size_t(l)]);
    config_json["layer_types"] = types;
  }
  BRISK_ASSIGN(smaller, parse_model_config(config_json, src.where));
  BRISK_ASSIGN(renamed, renamed_layer_tensors(src.config, smaller, renumbered));
  for (const auto& [name, stored] : src.store.all()) {
    report.params_before += uint64_t(stored.tensor.numel());
    const TensorSpec* s = src.spec_of(name);
    if (!s || s->layer == kNoLayer) {
      pruned.add(name, stored.tensor);
      continue;
    }
    auto target = renamed.find(name);
    if (target == renamed.end()) continue;  // a removed layer's
    pruned.add(target->second, stored.tensor);
  }
  return ok_status();
}

// Neurons, heads, hidden: every tensor cut along the axis the unit spans.
Status cut_widths(Source& src, StructuredUnit unit, Model& model, CalibratingBackend& capture,
                  const std::vector<int32_t>& tokens, CalibrationOptions calibration, int64_t kept,
                  StructuredPruneReport& report, PrunedTensors& pruned) {
  const ModelConfig& config = src.config;
  const ShapeKeys& keys = config.arch->shape_keys;
  const std::vector<TensorSpec>& specs = src.specs;
  Json& config_json = src.config_json;
  const int64_t units = report.units_before;
  std::map<int64_t, std::vector<int64_t>> keep;  // neurons / heads: per layer
  std::vector<int64_t> channels;                 // hidden
  {  // the fp32 copy of the weights lives only while scoring
    FloatWeights weights = FloatWeights::copy_from(model);
    CalibrationStats stats;
    if (!tokens.empty()) {
      const Role consumer = unit == StructuredUnit::Heads ? Role::AttnO : Role::MlpDown;
      if (unit == StructuredUnit::Hidden)
        calibration.select = [](const TensorSpec& s) {
          return s.part == Part::Weight && (s.role == Role::AttnQ || s.role == Role::AttnQkv || s.role == Role::MlpGate ||
                                            s.role == Role::MlpUp || s.role == Role::MlpGateUp);
        };
      else
        calibration.select = [consumer](const TensorSpec& s) { return s.role == consumer && s.part == Part::Weight; };
      BRISK_ASSIGN(found, calibrate(model, capture, tokens, calibration));
      stats = std::move(found);
    }
    report.calibration_tokens = stats.tokens;
    if (unit == StructuredUnit::Hidden) channels = top_indices(hidden_channel_scores(config, specs, weights, stats), kept);
    else {
      BRISK_ASSIGN(chosen, choose_layer_units(unit, config, specs, weights, stats, units, kept));
      keep = std::move(chosen);
    }
  }
  for (const auto& [name, stored] : src.store.all()) {
    report.params_before += uint64_t(stored.tensor.numel());
    const TensorSpec* s = src.spec_of(name);
    if (s && unit == StructuredUnit::Hidden && hidden_axis(*s) >= 0) {
      BRISK_TRY(pruned.add_cut(name, stored.tensor, stored_axis(*s, hidden_axis(*s)), channels));
    } else if (s && unit != StructuredUnit::Hidden && cut_by(unit, s->role) && s->split() != SplitAxis::None) {
      // Columns: output features (rows of [out, in]); Rows: input features (its columns).
      const int axis = stored_axis(*s, s->split() == SplitAxis::Columns ? 0 : 1);
      BRISK_TRY(pruned.add_cut(name, stored.tensor, axis, owned_indices(unit, s->role, keep[s->layer], config)));
    } else {
      pruned.add(name, stored.tensor);
    }
  }
  if (unit == StructuredUnit::Heads) {
    config_json[keys.heads] = kept * (config.n_heads / config.n_kv_heads);
    config_json[keys.kv_heads] = kept;
  } else {
    config_json[count_key(keys, unit)] = kept;
  }
  if (unit == StructuredUnit::Heads || unit == StructuredUnit::Hidden) config_json[keys.head_dim] = config.head_dim;
  return ok_status();
}

}  // namespace

Result<StructuredUnit> parse_structured_unit(const std::string& name) {
  for (const UnitName& u : kUnitNames)
    if (name == u.name) return u.unit;
  return make_error("--structured: '" + name + "' is not neurons, heads, layers or hidden");
}

const char* structured_unit_name(StructuredUnit unit) {
  for (const UnitName& u : kUnitNames)
    if (u.unit == unit) return u.name;
  return "?";
}

const char* structured_unit_counted(StructuredUnit unit) {
  for (const UnitName& u : kUnitNames)
    if (u.unit == unit) return u.counted;
  return "?";
}

Result<StructuredPruneReport> prune_structured(const fs::path& in, const fs::path& out, const std::vector<int32_t>& tokens,
                                               const StructuredPruneOptions& o) {
  if (!(o.ratio > 0 && o.ratio < 1)) return make_error("--ratio must be between 0 and 1");
  BRISK_TRY(require_empty_output(out));
  BRISK_TRY(require_float_model(in, "prune"));
  BRISK_ASSIGN(config_json, read_json_file(in / "config.json"));
  BRISK_ASSIGN(config, parse_model_config(config_json, (in / "config.json").string()));
  const ShapeKeys& keys = config.arch->shape_keys;
  const StructuredUnit unit = o.unit;
  const std::string unit_name = structured_unit_name(unit);
  if (!*count_key(keys, unit) || (unit == StructuredUnit::Heads && !*keys.heads))
    return make_error("structured pruning does not know the widths of model_type '" + config.model_type + "'");
  // Heads change hidden / heads, hidden changes hidden: the config must state head_dim itself.
  if ((unit == StructuredUnit::Heads || unit == StructuredUnit::Hidden) && !*keys.head_dim)
    return make_error("pruning " + unit_name + " needs a family whose config states head_dim; '" + config.model_type +
                      "' derives it from the width");
  if (unit == StructuredUnit::Layers && tokens.empty())
    return make_error("--structured layers scores layers by their effect on activations: give --calib text");
  const std::vector<TensorSpec> specs = config.arch->tensors(config);
  if (unit == StructuredUnit::Neurons || unit == StructuredUnit::Heads)
    for (const TensorSpec& s : specs)
      if (s.role == (unit == StructuredUnit::Heads ? Role::AttnQkv : Role::MlpGateUp))
        return make_error("'" + s.name + "' is a fused matrix: not pruned structurally yet");

  const int64_t units = unit == StructuredUnit::Neurons ? config.intermediate_size
                        : unit == StructuredUnit::Heads ? config.n_kv_heads
                        : unit == StructuredUnit::Layers ? config.n_layers
                                                         : config.hidden_size;
  const bool in_multiples = unit == StructuredUnit::Neurons || unit == StructuredUnit::Hidden;
  const int64_t multiple = in_multiples ? std::max<int64_t>(o.multiple, 1) : 1;
  const int64_t kept = kept_count(units, o.ratio, multiple);
  if (kept >= units)
    return make_error("--ratio " + std::to_string(o.ratio) + " removes no whole " +
                      (multiple > 1 ? "multiple of " + std::to_string(multiple) + " " : std::string()) + unit_name +
                      " of " + std::to_string(units));
  StructuredPruneReport report;
  report.units_before = units;
  report.units_after = kept;
  report.layers = unit == StructuredUnit::Layers ? kept : config.n_layers;

  CpuBackend cpu(o.threads);
  CalibratingBackend capture(cpu);
  CalibrationOptions calibration = o.calibration;
  calibration.statistics = InputStatistics::PerChannel;
  if (unit == StructuredUnit::Layers) calibration.final_norm_rows = LogitRows::All;
  BRISK_ASSIGN(model, load_for_calibration(in, capture, calibration));
  BRISK_ASSIGN(store, WeightStore::open_dir(in));
  Source src{std::move(config_json), config, specs, {}, std::move(store), (out / "config.json").string()};
  for (const TensorSpec& s : src.specs) src.by_name[s.name] = &s;
  PrunedTensors pruned;
  if (unit == StructuredUnit::Layers)
    BRISK_TRY(drop_layers(src, *model, capture, tokens, calibration, kept, report, pruned));
  else
    BRISK_TRY(cut_widths(src, unit, *model, capture, tokens, calibration, kept, report, pruned));

  report.params_after = pruned.params;

  if (auto check = parse_model_config(src.config_json, src.where); !check) return check.error();
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return make_error("creating " + out.string() + ": " + ec.message());
  BRISK_TRY(write_text_file(out / "config.json", src.config_json.dump(2) + "\n"));
  BRISK_TRY(copy_model_side_files(in, out, ConfigFile::Skip));
  BRISK_TRY(write_safetensors(out / "model.safetensors", pruned.tensors, {{"format", "pt"}}));
  return report;
}

}  // namespace brisk::calib
