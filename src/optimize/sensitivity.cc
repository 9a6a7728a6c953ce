#include "optimize/sensitivity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <unordered_map>

#include "backends/cpu/cpu_backend.h"
#include "compress/awq.h"
#include "compress/calib_grid.h"
#include "compress/calibration.h"
#include "compress/gptq.h"
#include "compress/quantize_model.h"
#include "core/quant_blocks.h"
#include "core/thread_pool.h"
#include "models/model.h"
#include "ops/forwarding_backend.h"

namespace brisk::recipe {

namespace {

// Runs every op of the wrapped backend, except that a weight registered with substitute()
// (found by the data pointer the model passes) is replaced by another Linear: the same matrix in
// a candidate format, or two low-rank factors, on that backend's own kernels; and a norm's weight
// or bias registered with substitute_vector() by another vector (AWQ's folded scales).
class SubstitutingBackend final : public PerMatrixForwardingBackend {
 public:
  explicit SubstitutingBackend(Backend& inner) : PerMatrixForwardingBackend(inner) {}
  void substitute(const void* original, const Linear& replacement) { swaps_[original] = replacement; }
  void substitute_vector(const float* original, const float* replacement) { vectors_[original] = replacement; }
  void clear() {
    swaps_.clear();
    vectors_.clear();
  }

  void rms_norm(const float* x, const float* w, int64_t rows, int64_t d, float eps, float* y) override {
    inner().rms_norm(x, vector(w), rows, d, eps, y);
  }
  void add_rms_norm(float* x, const float* h, const float* w, int64_t rows, int64_t d, float eps, float* y) override {
    inner().add_rms_norm(x, h, vector(w), rows, d, eps, y);
  }
  void layer_norm(const float* x, const float* w, const float* b, int64_t rows, int64_t d, float eps,
                  float* y) override {
    inner().layer_norm(x, vector(w), vector(b), rows, d, eps, y);
  }

  void matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y) override {
    auto it = swaps_.find(w.data);
    if (it == swaps_.end()) return inner().matmul(x, m, k, w, bias, y);
    Linear replacement = it->second;  // with the bias the model passed
    if (bias)
      replacement.bias = Tensor{const_cast<float*>(bias), DType::F32, {replacement.out_features()}, replacement.weight.device};
    inner().linear(x, m, replacement, y);
  }

 private:
  const float* vector(const float* v) const {
    auto it = vectors_.find(v);
    return it == vectors_.end() ? v : it->second;
  }
  std::unordered_map<const void*, Linear> swaps_;
  std::unordered_map<const float*, const float*> vectors_;
};

// log-softmax of each row of [rows, vocab], in place.
void log_softmax_rows(float* x, int64_t rows, int64_t vocab, ThreadPool& pool) {
  pool.parallel_for(rows, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* row = x + r * vocab;
      const float max = *std::max_element(row, row + vocab);
      double sum = 0;
      for (int64_t v = 0; v < vocab; ++v) sum += std::exp(double(row[v] - max));
      const float log_z = max + float(std::log(sum));
      for (int64_t v = 0; v < vocab; ++v) row[v] -= log_z;
    }
  });
}

// Mean over rows of KL(p || q), rows of log-probabilities [rows, vocab].
double mean_kl(const float* p, const float* q, int64_t rows, int64_t vocab, ThreadPool& pool) {
  std::vector<double> per_row(size_t(rows), 0.0);
  pool.parallel_for(rows, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* pr = p + r * vocab;
      const float* qr = q + r * vocab;
      double kl = 0;
      for (int64_t v = 0; v < vocab; ++v) kl += std::exp(double(pr[v])) * double(pr[v] - qr[v]);
      per_row[size_t(r)] = kl;
    }
  });
  double total = 0;
  for (double kl : per_row) total += kl;  // in row order: the same sum on any thread count
  return total / double(rows);
}

// The search space, declared once: each technique's candidates.
const std::map<std::string, std::vector<Candidate>>& techniques() {
  auto spec = [](QuantScheme scheme, Symmetry symmetry = Symmetry::Symmetric) {
    QuantSpec s;
    s.scheme = scheme;
    s.symmetry = symmetry;
    return std::optional<QuantSpec>(s);
  };
  auto pruned = [&](const std::string& name, double sparsity, calib::SparsityPattern pattern) {
    calib::PruneOptions p;
    p.method = calib::PruneMethod::Wanda;
    p.sparsity = sparsity;
    p.pattern = pattern;
    return Candidate{name, spec(QuantScheme::W8), p, calib::Method::Rtn, std::nullopt};
  };
  auto quantized = [](const std::string& name, std::optional<QuantSpec> s, calib::Method method = calib::Method::Rtn) {
    return Candidate{name, s, std::nullopt, method, std::nullopt};
  };
  auto factored = [](const std::string& name, double removed) {
    return Candidate{name, std::nullopt, std::nullopt, calib::Method::Rtn, removed};
  };
  static const std::map<std::string, std::vector<Candidate>> table = {
      {"quant",
       {quantized("w8", spec(QuantScheme::W8)), quantized("fp8", spec(QuantScheme::FP8)),
        quantized("w4", spec(QuantScheme::W4)), quantized("w4-asym", spec(QuantScheme::W4, Symmetry::Asymmetric)),
        quantized("nf4", spec(QuantScheme::NF4)), quantized("w4-gptq", spec(QuantScheme::W4), calib::Method::Gptq),
        quantized("w4-awq", spec(QuantScheme::W4), calib::Method::Awq)}},
      {"prune", {pruned("w8+2:4", 0, {2, 4}), pruned("w8+s50", 0.5, {}), pruned("w8+s70", 0.7, {})}},
      {"lowrank", {factored("lr20", 0.2), factored("lr40", 0.4)}}};
  return table;
}

// The decomposition low-rank candidates truncate: SVD-LLM's, whitened by the inputs' X^T X.
Result<calib::Decomposition> whitened_decomposition(const std::vector<float>& w, int64_t rows, int64_t cols,
                                                    const calib::InputStats& input, const std::string& name,
                                                    ThreadPool& pool) {
  const calib::LowRankOptions o;  // brisk lowrank's defaults (svd-llm, its damping)
  BRISK_ASSIGN(t, calib::input_transform(o.method, &input, cols, o, name));
  return calib::decompose(w.data(), rows, cols, t, &pool);
}

// An AWQ candidate of one group: the scales searched on the group's inputs (alpha grid, then the
// clipping search per matrix) with brisk quantize --method awq's defaults, folded into the norm
// that produces the input.
struct AwqGroup {
  std::map<std::string, QuantizedMatrix> codes;      // by matrix
  std::map<std::string, std::vector<float>> folded;  // the norm's weight (and bias) divided by the scales
};

Result<AwqGroup> awq_group(CpuBackend& host, const SearchGroup& group, const QuantSpec& spec,
                           const std::map<std::string, std::vector<float>>& values, const calib::InputStats& input,
                           const std::map<std::string, Tensor>& norm_slots) {
  const calib::ScaleGroup& fold = *group.norm_fold;
  const int64_t k = input.width;
  calib::FloatWeights weights;
  for (const MatrixShape& m : group.matrices) {
    if (m.cols != k) return make_error("optimize: " + m.tensor + " does not read the width its calibration inputs have");
    weights.set(m.tensor, values.at(m.tensor), {m.rows, m.cols});
  }
  const calib::AwqOptions options;
  const calib::AwqScales found = calib::awq_search_scales(host, weights, fold, input, spec, options);
  const std::vector<float> s = calib::expand_scales(fold, found.scales, k);
  const std::vector<float> h = calib::scaled_hessian(input.xtx, s, k);
  AwqGroup out;
  for (const MatrixShape& m : group.matrices) {
    std::vector<float>& w = weights.at(m.tensor);
    for (int64_t r = 0; r < m.rows; ++r)
      for (int64_t i = 0; i < k; ++i) w[size_t(r * k + i)] *= s[size_t(i)];
    out.codes[m.tensor] = calib::pack(calib::awq_quantize_matrix(host, w.data(), m.rows, k, h, spec, options));
  }
  for (const std::string& name : fold.folded_tensors()) {
    const Tensor& stored = norm_slots.at(name);
    if (stored.numel() != int64_t(found.scales.size()))
      return make_error("optimize: " + name + " has " + std::to_string(stored.numel()) + " channels, its group reads " +
                        std::to_string(found.scales.size()));
    std::vector<float>& v = out.folded[name];
    v.resize(found.scales.size());
    for (size_t c = 0; c < v.size(); ++c) v[c] = load_as_f32(stored.data, stored.dtype, c) / found.scales[c];
  }
  return out;
}

}  // namespace

// The KV cache types `kv` tries, narrowest first (int8 and fp8 hold a byte a value, bf16 two).
constexpr KvDtype kKvSearched[] = {KvDtype::F8, KvDtype::I8, KvDtype::BF16};
constexpr const char* kKvTechnique = "kv";

std::string search_space_names() {
  std::string out;
  for (const auto& [technique, candidates] : techniques()) {
    out += (out.empty() ? "" : ", ") + technique + " (";
    for (size_t i = 0; i < candidates.size(); ++i) out += (i ? ", " : "") + candidates[i].name;
    out += ")";
  }
  out += std::string(", ") + kKvTechnique + " (";
  for (KvDtype t : kKvSearched) (out += t == kKvSearched[0] ? "" : ", ") += kv_dtype_name(t);
  return out + " KV caches)";
}

Result<SearchSpace> search_space(const std::string& space) {
  SearchSpace result;
  std::vector<Candidate>& out = result.candidates;
  out.push_back({"keep", std::nullopt, std::nullopt, calib::Method::Rtn, std::nullopt});
  auto add = [&](const Candidate& c) {
    if (std::none_of(out.begin(), out.end(), [&](const Candidate& o) { return o.name == c.name; })) out.push_back(c);
  };
  size_t at = 0;
  while (at <= space.size()) {
    const size_t comma = std::min(space.find(',', at), space.size());
    const std::string item = space.substr(at, comma - at);
    at = comma + 1;
    if (item == kKvTechnique) {
      result.kv.assign(std::begin(kKvSearched), std::end(kKvSearched));
      continue;
    }
    if (auto t = techniques().find(item); t != techniques().end()) {
      for (const Candidate& c : t->second) add(c);
      continue;
    }
    bool found = false;
    for (const auto& [technique, candidates] : techniques())
      for (const Candidate& c : candidates)
        if (c.name == item) add(c), found = true;
    if (!found)
      return make_error("--space '" + space.substr(0, 64) + (space.size() > 64 ? "...'" : "'") +
                        ": unknown technique or candidate '" + item.substr(0, 64) +
                        "' (" + search_space_names() + ")");
  }
  return result;
}

Status apply_pruning(const Candidate& candidate, std::vector<float>& w, int64_t rows, int64_t cols,
                     const calib::InputStats* input, const std::string& name) {
  if (!candidate.prune) return ok_status();
  calib::PruneOptions p = *candidate.prune;
  if (!input) p.method = calib::PruneMethod::Magnitude;
  return calib::prune_matrix(w.data(), rows, cols, input, p, name);
}

Result<QuantizedMatrix> candidate_matrix(const Candidate& candidate, std::vector<float> w, int64_t rows, int64_t cols,
                                         const calib::InputStats* input, const std::string& name, ThreadPool* pool) {
  if (!candidate.spec) return make_error("candidate '" + candidate.name + "' keeps the matrix: nothing to quantize");
  if (candidate.method == calib::Method::Awq && input)
    return make_error("candidate '" + candidate.name + "': AWQ quantizes a whole group with the norm it folds into");
  BRISK_TRY(apply_pruning(candidate, w, rows, cols, input, name));
  if (candidate.method == calib::Method::Gptq && input) {
    calib::GptqOptions gptq;
    gptq.threads = pool ? pool->size() : 0;
    auto unpacked = calib::gptq(w.data(), rows, cols, input->xtx, *candidate.spec, gptq);
    if (!unpacked) return make_error("'" + name + "': " + unpacked.error().message);
    return calib::pack(*unpacked);
  }
  return quantize_matrix(w.data(), rows, cols, *candidate.spec, name, pool);
}

int64_t SearchGroup::params() const {
  int64_t n = 0;
  for (const MatrixShape& m : matrices) n += m.rows * m.cols;
  return n;
}

std::string SearchGroup::label() const {
  return layer == kNoLayer ? linear_group_name(kind) : std::to_string(layer) + "." + linear_group_name(kind);
}

bool reads_inputs(const Candidate& candidate) {
  return candidate.prune || candidate.method != calib::Method::Rtn || candidate.low_rank;
}

bool keeps(const Candidate& candidate) { return !candidate.spec && !candidate.low_rank; }

int64_t factor_rank(const Candidate& candidate, int64_t rows, int64_t cols) {
  if (!candidate.low_rank) return 0;
  return int64_t((1 - *candidate.low_rank) * double(rows) * double(cols) / double(rows + cols));
}

calib::FactoredMatrix factors_for(const Sensitivity& sens, const std::string& tensor, const Candidate& candidate) {
  const calib::FactoredMatrix& widest = sens.factors.at(tensor);
  return calib::leading_factors(widest, factor_rank(candidate, widest.out, widest.in));
}

bool holds(const SearchGroup& group, const Candidate& candidate) {
  // Candidates that read calibration inputs are for the layers' matrices: the head stays dense (as
  // brisk prune leaves it) and RTN (as the calibrated quantizers leave it).
  if (reads_inputs(candidate) && group.kind == LinearGroup::Head) return false;
  if (candidate.method == calib::Method::Awq && !group.norm_fold) return false;
  for (const MatrixShape& m : group.matrices) {
    if (candidate.spec && !scheme_traits(candidate.spec->scheme).per_channel && m.cols % candidate.spec->group != 0)
      return false;
    if (candidate.prune && candidate.prune->pattern.structured() && m.cols % candidate.prune->pattern.group != 0)
      return false;
    if (candidate.low_rank && factor_rank(candidate, m.rows, m.cols) < 1) return false;
  }
  return true;
}

Result<std::vector<SearchGroup>> search_groups(Model& model, std::map<std::string, Tensor>* slots) {
  const ModelConfig& c = model.config();
  if (!c.low_rank.empty()) return make_error("optimize: the model is low-rank factored; optimize starts from a whole model");
  if (model.is_encoder() || model.output_width() != c.vocab_size)
    return make_error("optimize: '" + c.model_type + "' is an encoder; optimize scores decoders by their next-token "
                      "distributions");
  std::vector<SearchGroup> groups;
  std::map<std::pair<int64_t, LinearGroup>, size_t> index;
  model.visit_tensors([&](const TensorSpec& spec, Tensor& slot) {
    const LinearGroup kind = linear_group(spec.role);
    if (!spec.is_matrix() || kind == LinearGroup::None || spec.part != Part::Weight || !slot.data) return;
    auto [it, added] = index.try_emplace({spec.layer, kind}, groups.size());
    if (added) groups.push_back({spec.layer, kind, {}, std::nullopt});
    groups[it->second].matrices.push_back({spec.name, spec.module, slot.dim(0), slot.dim(1), slot.dtype});
    if (slots) (*slots)[spec.name] = slot;
  });
  if (groups.empty()) return make_error("optimize: '" + c.model_type + "' has no linear layers to search");
  // Groups fed by a norm, where AWQ's scales fold (none for blocks without both pre-norms).
  if (auto folds = calib::scale_groups(c, calib::Folds::NormOnly); folds.ok())
    for (const calib::ScaleGroup& fold : *folds)
      for (SearchGroup& g : groups)
        if (g.matrices.size() == fold.consumers.size() &&
            std::all_of(g.matrices.begin(), g.matrices.end(), [&](const MatrixShape& m) {
              return std::count(fold.consumers.begin(), fold.consumers.end(), m.tensor) == 1;
            }))
          g.norm_fold = fold;
  for (const SearchGroup& g : groups)
    for (const MatrixShape& m : g.matrices)
      if (is_block_dtype(m.stored))
        return make_error("optimize: " + m.tensor + " is already quantized (" + std::string(dtype_name(m.stored)) +
                          "); optimize starts from a float model");
  return groups;
}

Result<Sensitivity> measure_sensitivity(const std::filesystem::path& model_dir, const std::vector<int32_t>& tokens,
                                        const std::vector<Candidate>& candidates, const SensitivityOptions& options,
                                        const BackendOptions& where, const std::function<void(int64_t, int64_t)>& progress) {
  const auto start = std::chrono::steady_clock::now();
  // Candidates are made from the stored values, read on the host from the model mapped in place.
  // On the CPU that model is also the one scored (a swapped-in candidate is then the host's own
  // matrix, nothing copied); elsewhere the scored model is a second one on that device.
  CpuBackend host(where.threads, where.bf16 == Bf16Precision::Fast ? cpu::Bf16Math::Dot : cpu::Bf16Math::Exact,
                  WeightPlacement::Mapped);
  std::unique_ptr<Backend> device_backend;
  if (where.device != "cpu") {
    BRISK_ASSIGN(made, make_backend(where));
    device_backend = std::move(made);
  }
  Backend& device = device_backend ? *device_backend : host;
  calib::CalibratingBackend capture(device);  // the base model's inputs, for candidates that read them
  SubstitutingBackend backend(capture);
  ModelOptions model_options;
  model_options.max_rows = std::min<int64_t>(options.window, 512);
  model_options.context = options.window;
  BRISK_ASSIGN(model, load_model(model_dir, backend, model_options));
  std::unique_ptr<Model> host_copy;
  if (device_backend) {
    BRISK_ASSIGN(loaded, load_model(model_dir, host, model_options));
    host_copy = std::move(loaded);
  }
  Model& host_model = host_copy ? *host_copy : *model;
  const ModelConfig& c = model->config();
  if (options.window < 2 || options.window > model->context())
    return make_error("optimize: calibration window of " + std::to_string(options.window) +
                      " tokens does not fit the model's context of " + std::to_string(model->context()));

  // The scored model's slots give each matrix's pointer (the key of a swap), the host model's its
  // row-major values; likewise for the norms AWQ folds into.
  Sensitivity result;
  std::map<std::string, Tensor> slots, host_slots;
  BRISK_ASSIGN(groups, search_groups(*model, &slots));
  result.groups = std::move(groups);
  for (const SearchGroup& g : result.groups)
    if (g.norm_fold)
      for (const std::string& name : g.norm_fold->folded_tensors()) slots[name] = Tensor{};
  model->visit_tensors([&](const TensorSpec& spec, Tensor& slot) {
    if (auto it = slots.find(spec.name); it != slots.end() && !it->second.data) it->second = slot;
  });
  host_model.visit_tensors([&](const TensorSpec& spec, Tensor& slot) {
    if (slots.count(spec.name)) host_slots[spec.name] = slot;
  });

  // Calibration windows spread evenly over the text; the base model's log-probabilities kept.
  const int64_t window = options.window, vocab = c.vocab_size;
  const int64_t available = int64_t(tokens.size()) / window;
  const int64_t windows = std::min(available, std::max<int64_t>(options.tokens / window, 1));
  if (windows < 1)
    return make_error("optimize: the calibration text has " + std::to_string(tokens.size()) +
                      " tokens, fewer than one window of " + std::to_string(window));
  for (int32_t id : tokens)
    if (id < 0 || id >= vocab) return make_error("optimize: calibration token id " + std::to_string(id) + " is outside the vocabulary");
  // Candidates that fit to calibration inputs (GPTQ, Wanda) see other windows than the KL is
  // scored on, midway between them (the same ones when the text holds no others): scored on their
  // own fitting data GPTQ's damage looked smaller than it measured (sotu-llama, 256 tokens: rank
  // correlation 0.77, 0.88 without GPTQ).
  std::vector<const int32_t*> starts, fit_starts;
  for (int64_t w = 0; w < windows; ++w) {
    starts.push_back(tokens.data() + (w * available / windows) * window);
    fit_starts.push_back(tokens.data() + ((w * available / windows + available / (2 * windows)) % available) * window);
  }
  result.tokens = windows * window;
  KvCache cache = model->make_cache(window);
  // Runs the windows starting at `at`; with `out`, their next-token log-probabilities go there,
  // without, no logits are formed (a pass that only feeds the capture).
  auto run_windows = [&](const std::vector<const int32_t*>& at, std::vector<float>* out) {
    if (out) out->resize(size_t(result.tokens * vocab));
    for (int64_t w = 0; w < windows; ++w) {
      float* rows = out ? out->data() + w * window * vocab : nullptr;
      for (int64_t s = 0; s < window; s += model->max_rows()) {
        const int64_t n = std::min(model->max_rows(), window - s);
        model->forward(at[size_t(w)] + s, n, s, cache, out ? LogitRows::All : LogitRows::None,
                       rows ? rows + s * vocab : nullptr);
      }
      if (rows) log_softmax_rows(rows, window, vocab, host.pool());
    }
  };
  std::vector<float> base, probe;
  run_windows(starts, &base);

  ThreadPool& pool = host.pool();
  const int64_t total = int64_t(result.groups.size() * candidates.size());
  int64_t done = 0;
  result.kl.assign(result.groups.size(), std::vector<std::optional<double>>(candidates.size()));
  result.bytes.assign(result.groups.size(), std::vector<std::optional<uint64_t>>(candidates.size()));
  for (size_t g = 0; g < result.groups.size(); ++g) {
    // The group's inputs in the base model, with x^T x, for candidates that read them: one more
    // pass, a group at a time (a k x k Gram matrix per input; tinyllama's down_proj's is 254 MB).
    // Only the per-channel sums are kept afterwards (writing pruned modules needs them again).
    if (std::any_of(candidates.begin(), candidates.end(),
                    [&](const Candidate& cand) { return reads_inputs(cand) && holds(result.groups[g], cand); })) {
      std::unordered_map<const void*, std::string> weights;
      for (const MatrixShape& m : result.groups[g].matrices) weights[slots.at(m.tensor).data] = m.tensor;
      capture.start_capture(std::move(weights), 1, 0, calib::InputStatistics::Full);
      run_windows(fit_starts, nullptr);
      for (auto& [name, stats] : capture.finish_capture()) result.inputs[name] = stats;
    }
    // The group's stored values in fp32, decoded once for all its candidates, on every thread
    // (llama3-8b's gate/up pair holds 117M values: decoding them on one thread for each candidate
    // again was the scoring's largest repeated host work, where a pair took 0.44 s on the H100).
    std::map<std::string, std::vector<float>> values;
    for (const MatrixShape& m : result.groups[g].matrices) {
      std::vector<float>& v = values[m.tensor];
      v.resize(size_t(m.rows * m.cols));
      const Tensor& stored = host_slots.at(m.tensor);
      const size_t row_bytes = stored.nbytes() / size_t(m.rows);
      pool.parallel_for(m.rows, [&](int64_t begin, int64_t end) {
        decode_rows(static_cast<const uint8_t*>(stored.data) + size_t(begin) * row_bytes, stored.dtype, end - begin, m.cols,
                    v.data() + begin * m.cols);
      });
    }
    // Low-rank candidates truncate one decomposition of each matrix, kept at the widest rank any takes.
    if (std::any_of(candidates.begin(), candidates.end(),
                    [&](const Candidate& cand) { return cand.low_rank && holds(result.groups[g], cand); })) {
      for (const MatrixShape& m : result.groups[g].matrices) {
        auto input = result.inputs.find(m.tensor);
        if (input == result.inputs.end())
          return make_error("optimize: no calibration inputs were seen for " + m.tensor + " (low-rank candidates)");
        BRISK_ASSIGN(d, whitened_decomposition(values.at(m.tensor), m.rows, m.cols, *input->second, m.tensor, pool));
        int64_t rank = 0;
        for (const Candidate& cand : candidates)
          if (cand.low_rank) rank = std::max(rank, std::min(factor_rank(cand, m.rows, m.cols), d.k));
        result.factors[m.tensor] = calib::leading_factors(d, rank, m.tensor);
      }
    }
    for (size_t ci = 0; ci < candidates.size(); ++ci) {
      const Candidate& cand = candidates[ci];
      if (progress) progress(++done, total);
      if (keeps(cand)) {
        result.kl[g][ci] = 0.0;
        uint64_t stored = 0;
        for (const MatrixShape& m : result.groups[g].matrices) stored += uint64_t(m.rows * m.cols) * dtype_size(m.stored);
        result.bytes[g][ci] = stored;
        continue;
      }
      if (!holds(result.groups[g], cand)) continue;  // the format cannot hold these rows
      std::vector<QuantizedMatrix> quantized;      // alive while substituted
      std::vector<std::vector<uint8_t>> encoded;  // low-rank factors in the stored dtype, likewise
      std::vector<Tensor> swapped_in;              // the device's copies of them
      uint64_t disk = 0;
      std::optional<AwqGroup> awq;  // the group's codes and its norm's folded vectors
      if (cand.method == calib::Method::Awq) {
        const std::string& first = result.groups[g].matrices.front().tensor;
        auto input = result.inputs.find(first);
        if (input == result.inputs.end())
          return make_error("optimize: no calibration inputs were seen for " + first + " (candidate " + cand.name + ")");
        BRISK_ASSIGN(made, awq_group(host, result.groups[g], *cand.spec, values, *input->second, host_slots));
        awq = std::move(made);
        for (auto& [name, v] : awq->folded) {
          result.folded[name][cand.name] = v;
          swapped_in.push_back(device.upload(Tensor{v.data(), DType::F32, {int64_t(v.size())}}));
          backend.substitute_vector(static_cast<const float*>(slots.at(name).data),
                                    static_cast<const float*>(swapped_in.back().data));
        }
      }
      for (const MatrixShape& m : result.groups[g].matrices) {
        if (cand.low_rank) {
          const calib::FactoredMatrix f = factors_for(result, m.tensor, cand);
          auto on_device = [&](const std::vector<float>& v, std::vector<int64_t> shape) {
            encoded.push_back(encode_floats(v.data(), v.size(), m.stored));
            disk += encoded.back().size();
            swapped_in.push_back(device.upload(Tensor{encoded.back().data(), m.stored, std::move(shape)}));
            return swapped_in.back();
          };
          Linear factored;
          factored.input_factor = on_device(f.input_factor, {f.rank, f.in});
          factored.weight = on_device(f.output_factor, {f.out, f.rank});
          backend.substitute(slots.at(m.tensor).data, factored);
          continue;
        }
        auto input = result.inputs.find(m.tensor);
        if (reads_inputs(cand) && input == result.inputs.end())
          return make_error("optimize: no calibration inputs were seen for " + m.tensor + " (candidate " + cand.name + ")");
        QuantizedMatrix q;
        if (awq) {
          q = awq->codes.at(m.tensor);
        } else {
          BRISK_ASSIGN(made, candidate_matrix(cand, values.at(m.tensor), m.rows, m.cols,
                                              input == result.inputs.end() ? nullptr : input->second.get(), m.tensor, &pool));
          q = std::move(made);
        }
        if (cand.method != calib::Method::Rtn) result.calibrated[m.tensor][cand.name] = q;
        for (const OwnedTensor& t : quantized_disk_tensors(m.tensor, q.tensor, layout_of(*cand.spec))) disk += t.bytes.size();
        swapped_in.push_back(device.upload(q.tensor));
        Linear replacement;
        replacement.weight = swapped_in.back();
        backend.substitute(slots.at(m.tensor).data, replacement);
        quantized.push_back(std::move(q));
      }
      result.bytes[g][ci] = disk;
      run_windows(starts, &probe);
      backend.clear();
      for (const Tensor& t : swapped_in) device.release_weight(t);
      result.kl[g][ci] = std::max(0.0, mean_kl(base.data(), probe.data(), result.tokens, vocab, pool));
    }
    for (const MatrixShape& m : result.groups[g].matrices)
      if (auto input = result.inputs.find(m.tensor); input != result.inputs.end()) input->second->xtx = {};
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace brisk::recipe
