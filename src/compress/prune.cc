#include "compress/prune.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "backends/cpu/cpu_backend.h"
#include "core/dtype.h"
#include "core/splitmix64.h"
#include "compress/obs_sweep.h"
#include "formats/json_file.h"
#include "formats/model_folder.h"
#include "formats/safetensors.h"
#include "formats/weight_store.h"
#include "models/model_config.h"

namespace brisk::calib {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxPatternGroup = 64;  // N:M groups longer than this are no hardware's pattern

uint64_t name_seed(const std::string& name, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ (seed * 0x9E3779B97F4A7C15ull);
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

// What keeping each weight is worth (higher: kept first), for the methods that only choose a mask.
std::vector<float> keep_scores(PruneMethod method, const float* w, int64_t rows, int64_t cols, const InputStats* input,
                               uint64_t seed, const std::string& name) {
  std::vector<float> s(size_t(rows * cols));
  if (method == PruneMethod::Random) {
    SplitMix64 rng{name_seed(name, seed)};
    for (float& v : s) v = float(rng.next() >> 40);  // 24 random bits: exact in a float
    return s;
  }
  std::vector<float> column(size_t(cols), 1.0f);
  if (method == PruneMethod::Wanda)
    for (int64_t j = 0; j < cols; ++j) column[size_t(j)] = float(std::sqrt(input->sq_sum[size_t(j)]));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) s[size_t(r * cols + j)] = std::fabs(w[r * cols + j]) * column[size_t(j)];
  return s;
}

// The `count` entries of `candidates` with the lowest scores (ties: the lower index), marked in `pruned`.
void mark_lowest(const std::vector<float>& score, std::vector<int64_t>& candidates, int64_t count,
                 std::vector<uint8_t>& pruned) {
  count = std::clamp<int64_t>(count, 0, int64_t(candidates.size()));
  if (count == 0) return;
  auto lower = [&](int64_t a, int64_t b) { return score[size_t(a)] < score[size_t(b)] || (score[size_t(a)] == score[size_t(b)] && a < b); };
  std::nth_element(candidates.begin(), candidates.begin() + (count - 1), candidates.end(), lower);
  for (int64_t i = 0; i < count; ++i) pruned[size_t(candidates[size_t(i)])] = 1;
}

// The mask of one matrix from its scores: per N:M group, per row (wanda) or over the matrix.
std::vector<uint8_t> choose_mask(const std::vector<float>& score, int64_t rows, int64_t cols, const PruneOptions& o) {
  std::vector<uint8_t> pruned(size_t(rows * cols), 0);
  std::vector<int64_t> candidates;
  auto run = [&](int64_t first, int64_t n, int64_t stride, int64_t count) {
    candidates.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) candidates[size_t(i)] = first + i * stride;
    mark_lowest(score, candidates, count, pruned);
  };
  if (o.pattern.structured()) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < cols; g += o.pattern.group) run(r * cols + g, o.pattern.group, 1, o.pattern.group - o.pattern.keep);
  } else if (o.method == PruneMethod::Wanda) {
    for (int64_t r = 0; r < rows; ++r) run(r * cols, cols, 1, int64_t(std::floor(o.sparsity * double(cols))));
  } else {
    run(0, rows * cols, 1, int64_t(std::floor(o.sparsity * double(rows * cols))));
  }
  return pruned;
}

// SparseGPT: masks chosen block by block (N:M: group by group) from the error-updated weights by
// the cost w^2 / U_jj^2 of zeroing each, the kept weights compensating through the sweep.
Status sparsegpt(float* w, int64_t rows, int64_t cols, const std::vector<double>& xtx, const PruneOptions& o) {
  std::vector<double> h = xtx;
  std::vector<float> work(w, w + rows * cols);
  for (int64_t i = 0; i < cols; ++i)  // dead inputs, as GPTQ: weights that never mattered, zeroed
    if (h[size_t(i * cols + i)] == 0) {
      h[size_t(i * cols + i)] = 1;
      for (int64_t r = 0; r < rows; ++r) work[size_t(r * cols + i)] = 0;
    }
  BRISK_ASSIGN(u, inverse_hessian_factor(h, cols, o.damp));
  h = {};
  std::vector<uint8_t> pruned(size_t(rows * cols), 0);
  std::vector<float> cost(size_t(rows * cols));
  std::vector<int64_t> candidates;
  // Marks the `count` cheapest of columns [c0, c1) of rows [r0, r1) by the current weights.
  auto mark = [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1, int64_t count) {
    candidates.clear();
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = c0; c < c1; ++c) {
        const float d = u[size_t(c * cols + c)], v = work[size_t(r * cols + c)];
        cost[size_t(r * cols + c)] = v * v / (d * d);
        candidates.push_back(r * cols + c);
      }
    mark_lowest(cost, candidates, count, pruned);
  };
  const int64_t block = std::max<int64_t>(o.block, 1);
  obs_sweep(
      work.data(), rows, cols, u, block,
      [&](int64_t j) {
        if (o.pattern.structured()) {
          if (j % o.pattern.group == 0)
            for (int64_t r = 0; r < rows; ++r) mark(r, r + 1, j, j + o.pattern.group, o.pattern.group - o.pattern.keep);
        } else if (j % block == 0) {
          const int64_t c1 = std::min(j + block, cols);
          mark(0, rows, j, c1, int64_t(std::floor(o.sparsity * double(rows * (c1 - j)))));
        }
      },
      [&](int64_t r, int64_t j, float v) { return pruned[size_t(r * cols + j)] ? 0.0f : v; });
  std::copy(work.begin(), work.end(), w);
  return ok_status();
}

double zero_fraction(const std::vector<float>& w) {
  return w.empty() ? 0.0 : double(std::count(w.begin(), w.end(), 0.0f)) / double(w.size());
}

// Global scope: the lowest-scoring `sparsity` of all matrices' entries together. The threshold is
// found by bisecting the scores' bit patterns (non-negative floats order as their bits) and
// counting, without sorting or indexing every entry of the model.
void prune_globally(FloatWeights& weights, const std::vector<std::string>& names, const PruneOptions& o) {
  std::map<std::string, std::vector<float>> scores;
  int64_t total = 0;
  for (const std::string& name : names) {
    const std::vector<float>& w = weights.at(name);
    scores[name] = keep_scores(o.method, w.data(), weights.rows(name), weights.cols(name), nullptr, o.seed, name);
    total += int64_t(w.size());
  }
  const int64_t target = int64_t(std::floor(o.sparsity * double(total)));
  auto bits = [](float v) { uint32_t b; std::memcpy(&b, &v, 4); return b; };
  auto at_or_below = [&](uint32_t t) {
    int64_t n = 0;
    for (const auto& [name, s] : scores)
      for (float v : s) n += bits(v) <= t;
    return n;
  };
  uint32_t lo = 0, hi = 0x7f800000u;  // the smallest threshold with at least `target` at or below it
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (at_or_below(mid) >= target) hi = mid;
    else lo = mid + 1;
  }
  int64_t below = 0;
  for (const auto& [name, s] : scores)
    for (float v : s) below += bits(v) < lo;
  int64_t ties = target - below;  // entries at the threshold itself, zeroed in name and index order
  for (const std::string& name : names) {
    std::vector<float>& w = weights.at(name);
    const std::vector<float>& s = scores.at(name);
    for (size_t i = 0; i < w.size(); ++i)
      if (bits(s[i]) < lo || (bits(s[i]) == lo && ties > 0 && ties--)) w[i] = 0.0f;
  }
}

}  // namespace

const char* prune_method_name(PruneMethod m) {
  switch (m) {
    case PruneMethod::Magnitude: return "magnitude";
    case PruneMethod::Random: return "random";
    case PruneMethod::Wanda: return "wanda";
    case PruneMethod::SparseGpt: return "sparsegpt";
  }
  return "?";
}

Result<PruneMethod> parse_prune_method(const std::string& name) {
  for (PruneMethod m : {PruneMethod::Magnitude, PruneMethod::Random, PruneMethod::Wanda, PruneMethod::SparseGpt})
    if (name == prune_method_name(m)) return m;
  return make_error("unknown pruning method '" + name + "' (magnitude, random, wanda, sparsegpt)");
}

bool needs_calibration(PruneMethod m) { return m == PruneMethod::Wanda || m == PruneMethod::SparseGpt; }

Result<SparsityPattern> parse_sparsity_pattern(const std::string& text) {
  const size_t colon = text.find(':');
  SparsityPattern p;
  auto number = [](const std::string& s, int64_t& v) {
    if (s.empty() || s.size() > 4 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    v = std::stoll(s);
    return true;
  };
  if (colon == std::string::npos || !number(text.substr(0, colon), p.keep) || !number(text.substr(colon + 1), p.group) ||
      p.keep < 1 || p.keep >= p.group || p.group > kMaxPatternGroup)
    return make_error("--pattern '" + text + "': expected N:M with 0 < N < M <= " + std::to_string(kMaxPatternGroup) +
                      " (e.g. 2:4: at most 2 non-zeros in every 4 inputs)");
  return p;
}

Status check_prune_options(const PruneOptions& o) {
  if (!o.pattern.structured() && !(o.sparsity >= 0.0 && o.sparsity < 1.0))
    return make_error("--sparsity must be in [0, 1)");
  if (o.scope == PruneScope::Global && (o.pattern.structured() || needs_calibration(o.method)))
    return make_error("--scope global compares scores across matrices: magnitude or random, unstructured only");
  return ok_status();
}

Status prune_matrix(float* w, int64_t rows, int64_t cols, const InputStats* input, const PruneOptions& o,
                    const std::string& name) {
  BRISK_TRY(check_prune_options(o));
  if (o.pattern.structured() && cols % o.pattern.group != 0)
    return make_error("'" + name + "' has " + std::to_string(cols) + " inputs: not whole groups of " +
                      std::to_string(o.pattern.group) + " for the " + std::to_string(o.pattern.keep) + ":" +
                      std::to_string(o.pattern.group) + " pattern");
  // Wanda reads the per-channel sums, SparseGPT the Gram matrix (captured only with full statistics).
  const bool has_inputs = input && input->width == cols &&
                          (o.method == PruneMethod::Wanda ? int64_t(input->sq_sum.size()) == cols
                                                          : int64_t(input->xtx.size()) == cols * cols);
  if (needs_calibration(o.method) && !has_inputs)
    return make_error("'" + name + "': " + prune_method_name(o.method) + " needs the matrix's calibration inputs");
  if (o.method == PruneMethod::SparseGpt) {
    Status st = sparsegpt(w, rows, cols, input->xtx, o);
    if (!st.ok()) return make_error("'" + name + "': " + st.error().message);
    return st;
  }
  const std::vector<float> score = keep_scores(o.method, w, rows, cols, input, o.seed, name);
  const std::vector<uint8_t> pruned = choose_mask(score, rows, cols, o);
  for (size_t i = 0; i < pruned.size(); ++i)
    if (pruned[i]) w[i] = 0.0f;
  return ok_status();
}

Result<PrunedModel> prune_with_calibration(const fs::path& model_dir, const std::vector<int32_t>& calibration_tokens,
                                           const PruneOptions& options,
                                           const std::function<void(int64_t, int64_t)>& progress) {
  BRISK_TRY(check_prune_options(options));
  BRISK_TRY(require_float_model(model_dir, "prune"));
  CpuBackend cpu(options.threads);
  CalibratingBackend capture(cpu);
  CalibrationOptions calibration = options.calibration;
  if (options.method == PruneMethod::Wanda) calibration.statistics = InputStatistics::PerChannel;  // no k x k Gram
  BRISK_ASSIGN(model, load_for_calibration(model_dir, capture, calibration));
  PrunedModel out;
  out.weights = FloatWeights::copy_from(*model);
  out.weights.bind_to(*model);  // later layers calibrate on the earlier ones pruned
  const std::vector<std::string> names = calibrated_matrices(*model);
  auto prune_one = [&](const std::string& name, const InputStats* input) -> Status {
    std::vector<float>& w = out.weights.at(name);
    return prune_matrix(w.data(), out.weights.rows(name), out.weights.cols(name), input, options, name);
  };
  const int64_t layers = model->config().n_layers;
  if (options.scope == PruneScope::Global) {
    prune_globally(out.weights, names, options);
  } else if (!needs_calibration(options.method)) {
    for (const std::string& name : names) BRISK_TRY(prune_one(name, nullptr));
  } else {
    for (int64_t l = 0; l < layers; ++l) {
      calibration.select = [l](const TensorSpec& spec) { return spec.layer == l; };
      BRISK_ASSIGN(stats, calibrate(*model, capture, calibration_tokens, calibration));
      out.calibration_tokens = stats.tokens;
      for (const auto& [name, input] : stats.by_tensor) BRISK_TRY(prune_one(name, input.get()));
      if (progress) progress(l + 1, layers);
    }
  }
  if (progress) progress(layers, layers);
  for (const std::string& name : names) out.sparsity[name] = zero_fraction(out.weights.at(name));
  return out;
}

Status write_pruned_model(const fs::path& in, const fs::path& out, const PrunedModel& model,
                          std::optional<SparseFormat> sparse_storage) {
  BRISK_ASSIGN(config_json, read_json_file(in / "config.json"));
  BRISK_ASSIGN(config, parse_model_config(config_json, (in / "config.json").string()));
  std::map<std::string, const TensorSpec*> spec_of;
  const std::vector<TensorSpec> specs = config.arch->tensors(config);
  for (const TensorSpec& spec : specs) spec_of[spec.name] = &spec;
  BRISK_ASSIGN(store, WeightStore::open_dir(in));
  std::vector<NamedTensor> tensors;
  std::vector<std::vector<uint8_t>> owned;  // converted pruned matrices, alive until written
  std::vector<OwnedTensor> sparse_parts;
  std::vector<std::string> sparse_modules;
  double zeros = 0, total = 0;
  const FloatWeights& weights = model.weights;
  for (const auto& [name, stored] : store.all()) {
    Tensor t = stored.tensor;
    if (model.sparsity.count(name)) {
      if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
        return make_error(stored.file + ": '" + name + "' is " + std::string(dtype_name(t.dtype)) +
                          ": prune the float model, then quantize it");
      const std::vector<float>& w = weights.at(name);
      const int64_t rows = weights.rows(name), cols = weights.cols(name);
      std::vector<float> stored_order;  // GPT-2's Conv1D matrices are stored [in, out]
      const float* values = w.data();
      if (spec_of.at(name)->kind == TensorKind::TransposedMatrix) {
        stored_order.resize(w.size());
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) stored_order[size_t(c * rows + r)] = w[size_t(r * cols + c)];
        values = stored_order.data();
      }
      t.data = owned.emplace_back(encode_floats(values, w.size(), t.dtype)).data();
      if (sparse_storage) {
        BRISK_ASSIGN(parts, sparse_disk_tensors(name, t, *sparse_storage));
        for (OwnedTensor& p : parts) sparse_parts.push_back(std::move(p));
        sparse_modules.push_back(spec_of.at(name)->module);
        zeros += model.sparsity.at(name) * double(w.size()), total += double(w.size());
        continue;
      }
    }
    tensors.push_back({name, t});
  }
  for (const OwnedTensor& p : sparse_parts) tensors.push_back(p.view());
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return make_error("creating " + out.string() + ": " + ec.message());
  if (sparse_storage) {
    config_json["quantization_config"] =
        sparsity_quantization_config(*sparse_storage, total > 0 ? zeros / total : 0.0, sparse_modules);
    BRISK_TRY(copy_model_side_files(in, out, ConfigFile::Skip));
    BRISK_TRY(write_text_file(out / "config.json", config_json.dump(2) + "\n"));
  } else {
    BRISK_TRY(copy_model_side_files(in, out, ConfigFile::Copy));
  }
  return write_safetensors(out / "model.safetensors", tensors, {{"format", "pt"}});
}

}  // namespace brisk::calib
