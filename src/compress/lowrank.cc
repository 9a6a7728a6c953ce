#include "compress/lowrank.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "backends/cpu/cpu_backend.h"
#include "compress/calib_linalg.h"
#include "compress/calib_weights.h"
#include "formats/model_folder.h"
#include "formats/safetensors.h"

namespace brisk::calib {

namespace fs = std::filesystem;

const char* low_rank_method_name(LowRankMethod m) {
  switch (m) {
    case LowRankMethod::Svd: return "svd";
    case LowRankMethod::Asvd: return "asvd";
    case LowRankMethod::SvdLlm: return "svd-llm";
  }
  return "?";
}

Result<LowRankMethod> parse_low_rank_method(const std::string& name) {
  for (LowRankMethod m : {LowRankMethod::Svd, LowRankMethod::Asvd, LowRankMethod::SvdLlm})
    if (name == low_rank_method_name(m)) return m;
  return make_error("unknown low-rank method '" + name + "' (svd, asvd, svd-llm)");
}

bool needs_calibration(LowRankMethod m) { return m != LowRankMethod::Svd; }

Status check_low_rank_options(const LowRankOptions& o) {
  if ((o.rank_ratio > 0) == (o.compression > 0))
    return make_error("give one of --rank-ratio and --compression");
  if (o.rank_ratio > 0 && !(o.rank_ratio <= 1)) return make_error("--rank-ratio must be in (0, 1]");
  if (o.compression > 0 && !(o.compression < 1)) return make_error("--compression must be in (0, 1)");
  if (!(o.asvd_alpha > 0 && o.asvd_alpha <= 1)) return make_error("asvd alpha must be in (0, 1]");
  if (!(o.damp >= 0)) return make_error("damp must be >= 0");
  return ok_status();
}

Result<InputTransform> input_transform(LowRankMethod method, const InputStats* input, int64_t in,
                                       const LowRankOptions& options, const std::string& name) {
  InputTransform t;
  if (method == LowRankMethod::Svd) return t;
  if (!input || input->width != in || input->rows == 0)
    return make_error(name + ": no calibration statistics of its input");
  if (method == LowRankMethod::Asvd) {
    t.scales.resize(size_t(in));
    double largest = 0;
    for (int64_t j = 0; j < in; ++j) {
      t.scales[size_t(j)] = std::pow(input->mean_abs(j), options.asvd_alpha);
      largest = std::max(largest, t.scales[size_t(j)]);
    }
    if (!(largest > 0)) return make_error(name + ": its calibration inputs are all zero");
    // A channel that never carried a value would divide by zero: it gets a small weight instead.
    for (double& s : t.scales) s = std::max(s, largest * 1e-6);
    return t;
  }
  // svd-llm: X^T X = L L^T, damped like GPTQ's Hessian so a dead channel keeps it positive definite.
  double mean_diag = 0;
  for (int64_t j = 0; j < in; ++j) mean_diag += input->xtx[size_t(j * in + j)];
  mean_diag /= double(in);
  if (!(mean_diag > 0)) return make_error(name + ": its calibration inputs are all zero");
  for (double damp = std::max(options.damp, 1e-9);; damp *= 10) {
    t.lower = input->xtx;
    for (int64_t j = 0; j < in; ++j) t.lower[size_t(j * in + j)] += damp * mean_diag;
    if (cholesky_lower(t.lower, in)) return t;
    if (damp > 1) return make_error(name + ": X^T X is not positive definite even damped");
  }
}

namespace {

// z [in] (a row of the decomposition's right factor, in the transformed space) times T^-1.
void undo_transform(const InputTransform& t, int64_t in, double* z) {
  if (!t.scales.empty()) {
    for (int64_t j = 0; j < in; ++j) z[j] /= t.scales[size_t(j)];
  } else if (!t.lower.empty()) {
    // y L = z, L lower: from the last entry, y_i = z_i / L[i, i], then z_c -= y_i L[i, c] for
    // c < i -- row i of L, contiguous (the column-at-a-time order strode by `in` per entry).
    for (int64_t i = in - 1; i >= 0; --i) {
      const double* li = t.lower.data() + i * in;
      const double yi = z[i] /= li[i];
      for (int64_t c = 0; c < i; ++c) z[c] -= yi * li[c];
    }
  }
}

// gram[i, j] = x_i . x_j for the rows of x [rows, len] (symmetric, both halves filled); the
// upper triangle's rows dealt round-robin to the pool's tasks so each gets a like share.
std::vector<double> row_gram(const std::vector<double>& x, int64_t rows, int64_t len, ThreadPool* pool) {
  std::vector<double> gram(size_t(rows * rows), 0.0);
  const int64_t tasks = pool ? 4 * int64_t(pool->size()) : 1;
  parallel_for(pool, tasks, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task)
      for (int64_t i = task; i < rows; i += tasks)
        for (int64_t j = i; j < rows; ++j)
          gram[size_t(i * rows + j)] = dot(x.data() + i * len, x.data() + j * len, len);
  });
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < i; ++j) gram[size_t(i * rows + j)] = gram[size_t(j * rows + i)];
  return gram;
}

}  // namespace

Decomposition decompose(const float* w, int64_t out, int64_t in, const InputTransform& t, ThreadPool* pool) {
  Decomposition d;
  d.out = out, d.in = in, d.k = std::min(out, in);
  const int64_t k = d.k;
  // m = W T in double.
  std::vector<double> m(size_t(out * in));
  parallel_for(pool, out, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* wr = w + r * in;
      double* mr = m.data() + r * in;
      if (!t.lower.empty()) {  // (W L)[r, c] = sum_{i >= c} W[r, i] L[i, c]
        for (int64_t i = 0; i < in; ++i) {
          const double wi = wr[i];
          const double* li = t.lower.data() + i * in;
          for (int64_t c = 0; c <= i; ++c) mr[c] += wi * li[c];
        }
      } else {
        for (int64_t c = 0; c < in; ++c) mr[c] = double(wr[c]) * (t.scales.empty() ? 1.0 : t.scales[size_t(c)]);
      }
    }
  });
  // The smaller Gram matrix: m^T m [in, in] when out >= in (right singular vectors), else m m^T;
  // both as the Gram matrix of rows (m^T's rows: m's columns).
  const bool tall = out >= in;
  std::vector<double> gram;
  if (tall) {
    std::vector<double> columns(size_t(in * out));
    for (int64_t r = 0; r < out; ++r)
      for (int64_t c = 0; c < in; ++c) columns[size_t(c * out + r)] = m[size_t(r * in + c)];
    gram = row_gram(columns, in, out, pool);
  } else {
    gram = row_gram(m, out, in, pool);
  }
  std::vector<double> vecs;
  symmetric_eigen(gram, k, d.sigma2, vecs, pool);
  double largest = 0;
  for (double& s : d.sigma2) largest = std::max(largest, s = std::max(s, 0.0));
  d.left.assign(size_t(out * k), 0.0f);
  d.right.assign(size_t(k * in), 0.0f);
  parallel_for(pool, k, [&](int64_t begin, int64_t end) {
    std::vector<double> z(static_cast<size_t>(in)), vec(static_cast<size_t>(k));
    for (int64_t j = begin; j < end; ++j) {
      const double sigma = std::sqrt(d.sigma2[size_t(j)]);
      // A direction at rounding level of the largest carries nothing: both factors stay zero.
      if (!(d.sigma2[size_t(j)] > largest * 1e-24) || sigma == 0) continue;
      const double root = std::sqrt(sigma);
      for (int64_t i = 0; i < k; ++i) vec[size_t(i)] = vecs[size_t(i * k + j)];
      if (tall) {  // v_j = vecs[:, j]; left_j = m v_j / sqrt(sigma), right_j = sqrt(sigma) v_j^T T^-1
        for (int64_t r = 0; r < out; ++r) d.left[size_t(r * k + j)] = float(dot(m.data() + r * in, vec.data(), in) / root);
        for (int64_t c = 0; c < in; ++c) z[size_t(c)] = root * vec[size_t(c)];
      } else {  // u_j = vecs[:, j]; left_j = sqrt(sigma) u_j, right_j = u_j^T m / sqrt(sigma) T^-1
        for (int64_t r = 0; r < out; ++r) d.left[size_t(r * k + j)] = float(root * vec[size_t(r)]);
        std::fill(z.begin(), z.end(), 0.0);
        for (int64_t r = 0; r < out; ++r) {
          const double u = vec[size_t(r)] / root;
          const double* mr = m.data() + r * in;
          for (int64_t c = 0; c < in; ++c) z[size_t(c)] += u * mr[c];
        }
      }
      undo_transform(t, in, z.data());
      for (int64_t c = 0; c < in; ++c) d.right[size_t(j * in + c)] = float(z[size_t(c)]);
    }
  });
  return d;
}

namespace {

// The smallest rank whose components keep at least `fraction` of the spectrum's energy.
int64_t rank_for_energy(const Decomposition& d, double fraction) {
  double total = 0;
  for (double s : d.sigma2) total += s;
  if (!(total > 0)) return 1;
  double kept = 0;
  for (int64_t r = 1; r <= d.k; ++r) {
    kept += d.sigma2[size_t(r - 1)];
    if (kept >= fraction * total * (1 - 1e-12)) return r;
  }
  return d.k;
}

// 0 (whole) where factors of this rank would hold no fewer parameters than the matrix.
int64_t worthwhile(const Decomposition& d, int64_t rank) { return rank * (d.out + d.in) < d.out * d.in ? rank : 0; }

int64_t params_at(const Decomposition& d, int64_t rank) { return rank ? rank * (d.out + d.in) : d.out * d.in; }

double retained_fraction(const Decomposition& d, int64_t rank) {
  if (rank == 0) return 1;
  double total = 0, kept = 0;
  for (int64_t j = 0; j < d.k; ++j) (j < rank ? kept : total) += d.sigma2[size_t(j)];
  total += kept;
  return total > 0 ? kept / total : 1;
}

// The leading `rank` components of factors `left` [out, left_width] and `right` [>= rank, in].
FactoredMatrix leading(const std::string& name, int64_t out, int64_t in, int64_t rank, const float* left,
                       int64_t left_width, const float* right) {
  FactoredMatrix f;
  f.name = name;
  f.out = out, f.in = in, f.rank = rank;
  f.output_factor.resize(size_t(out * rank));
  for (int64_t r = 0; r < out; ++r) std::copy_n(left + r * left_width, rank, f.output_factor.data() + r * rank);
  f.input_factor.assign(right, right + rank * in);
  return f;
}

}  // namespace

FactoredMatrix leading_factors(const Decomposition& d, int64_t rank, const std::string& name) {
  return leading(name, d.out, d.in, rank, d.left.data(), d.k, d.right.data());
}

FactoredMatrix leading_factors(const FactoredMatrix& f, int64_t rank) {
  return leading(f.name, f.out, f.in, rank, f.output_factor.data(), f.rank, f.input_factor.data());
}

Result<std::vector<int64_t>> choose_ranks(const std::vector<Decomposition>& d, const LowRankOptions& o) {
  BRISK_TRY(check_low_rank_options(o));
  std::vector<int64_t> ranks(d.size());
  if (o.rank_ratio > 0) {
    for (size_t i = 0; i < d.size(); ++i)
      ranks[i] = worthwhile(d[i], std::max<int64_t>(1, std::llround(o.rank_ratio * double(d[i].k))));
    return ranks;
  }
  // One retained energy fraction for every matrix, the largest whose parameters fit the budget
  // (the total is monotone in the fraction: bisection).
  double dense = 0;
  for (const Decomposition& m : d) dense += double(m.out * m.in);
  const double budget = (1 - o.compression) * dense;
  auto total_at = [&](double fraction) {
    double total = 0;
    for (size_t i = 0; i < d.size(); ++i) total += double(params_at(d[i], worthwhile(d[i], rank_for_energy(d[i], fraction))));
    return total;
  };
  if (total_at(0) > budget)
    return make_error("--compression " + std::to_string(o.compression) +
                      " is out of reach: rank 1 everywhere still keeps " +
                      std::to_string(100 * (1 - total_at(0) / dense)) + "% of the parameters removed at most");
  double lo = 0, hi = 1;
  for (int it = 0; it < 60; ++it) {
    const double mid = (lo + hi) / 2;
    (total_at(mid) <= budget ? lo : hi) = mid;
  }
  for (size_t i = 0; i < d.size(); ++i) ranks[i] = worthwhile(d[i], rank_for_energy(d[i], lo));
  return ranks;
}

Result<LowRankModel> factor_with_calibration(const fs::path& model_dir, const std::vector<int32_t>& calibration_tokens,
                                             const LowRankOptions& options,
                                             const std::function<void(int64_t, int64_t)>& progress) {
  BRISK_TRY(check_low_rank_options(options));
  BRISK_TRY(require_float_model(model_dir, "lowrank"));
  CpuBackend cpu(options.threads);
  CalibratingBackend capture(cpu);
  CalibrationOptions calibration = options.calibration;
  BRISK_ASSIGN(model, load_for_calibration(model_dir, capture, calibration));
  const FloatWeights weights = FloatWeights::copy_from(*model);
  const std::vector<std::string> names = calibrated_matrices(*model);
  std::map<std::string, int64_t> layer_of;
  for (const TensorSpec& spec : model->config().arch->tensors(model->config())) layer_of[spec.name] = spec.layer;

  LowRankModel out;
  std::vector<Decomposition> decompositions(names.size());
  int64_t done = 0;
  auto decompose_one = [&](size_t i, const InputStats* input) -> Status {
    const std::string& name = names[i];
    BRISK_ASSIGN(t, input_transform(options.method, input, weights.cols(name), options, name));
    decompositions[i] = decompose(weights.at(name).data(), weights.rows(name), weights.cols(name), t, &cpu.pool());
    if (progress) progress(++done, int64_t(names.size()));
    return ok_status();
  };
  if (!needs_calibration(options.method)) {
    for (size_t i = 0; i < names.size(); ++i) BRISK_TRY(decompose_one(i, nullptr));
  } else {  // one layer's inputs at a time (a [k, k] double X^T X per distinct input)
    for (int64_t l = 0; l < model->config().n_layers; ++l) {
      calibration.select = [l](const TensorSpec& spec) { return spec.layer == l; };
      BRISK_ASSIGN(stats, calibrate(*model, capture, calibration_tokens, calibration));
      out.calibration_tokens = stats.tokens;
      for (size_t i = 0; i < names.size(); ++i)
        if (layer_of[names[i]] == l) BRISK_TRY(decompose_one(i, stats.find(names[i])));
    }
  }
  BRISK_ASSIGN(ranks, choose_ranks(decompositions, options));
  for (size_t i = 0; i < names.size(); ++i) {
    const Decomposition& d = decompositions[i];
    FactoredMatrix f = leading_factors(d, ranks[i], names[i]);  // rank 0: the whole matrix stays as stored
    f.retained = retained_fraction(d, f.rank);
    out.params_before += d.out * d.in;
    out.params_after += f.params();
    out.matrices.push_back(std::move(f));
  }
  return out;
}

Status write_low_rank_model(const fs::path& in, const fs::path& out, const LowRankModel& model, LowRankMethod method) {
  BRISK_ASSIGN(config_json, read_json_file(in / "config.json"));
  BRISK_ASSIGN(config, parse_model_config(config_json, (in / "config.json").string()));
  std::map<std::string, const TensorSpec*> spec_of;
  const std::vector<TensorSpec> specs = config.arch->tensors(config);
  for (const TensorSpec& spec : specs) spec_of[spec.name] = &spec;
  std::map<std::string, const FactoredMatrix*> factored;  // by the matrix's tensor name
  Json ranks = Json::object();
  std::set<std::string> factored_modules;
  for (const FactoredMatrix& f : model.matrices) {
    if (f.rank == 0) continue;
    const TensorSpec* spec = spec_of.count(f.name) ? spec_of[f.name] : nullptr;
    if (!spec) return make_error(in.string() + ": no tensor '" + f.name + "' in this model");
    factored[f.name] = &f;
    factored_modules.insert(spec->module);
    ranks[spec->module] = f.rank;
  }
  BRISK_ASSIGN(store, WeightStore::open_dir(in));
  std::vector<NamedTensor> tensors;
  std::vector<std::vector<uint8_t>> owned;  // encoded factors, alive until written
  for (const auto& [name, stored] : store.all()) {
    const auto spec = spec_of.find(name);
    const std::string module = spec == spec_of.end() ? "" : spec->second->module;
    if (!factored_modules.count(module)) {
      tensors.push_back({name, stored.tensor});
      continue;
    }
    const DType dtype = stored.tensor.dtype;
    if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
      return make_error(stored.file + ": '" + name + "' is " + std::string(dtype_name(dtype)) +
                        ": factor the float model");
    if (spec->second->part == Part::Bias) {  // the second factor's bias, as nn.Sequential names it
      tensors.push_back({factor_module(module, Factor::Output) + ".bias", stored.tensor});
      continue;
    }
    const FactoredMatrix& f = *factored.at(name);
    auto add = [&](const std::string& factor_name, const std::vector<float>& values, std::vector<int64_t> shape) {
      Tensor t{nullptr, dtype, std::move(shape)};
      t.data = owned.emplace_back(encode_floats(values.data(), values.size(), dtype)).data();
      tensors.push_back({factor_name, t});
    };
    add(factor_module(module, Factor::Input) + ".weight", f.input_factor, {f.rank, f.in});
    add(factor_module(module, Factor::Output) + ".weight", f.output_factor, {f.out, f.rank});
  }
  config_json["brisk_low_rank"] = Json{{"method", low_rank_method_name(method)}, {"ranks", ranks}};
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return make_error("creating " + out.string() + ": " + ec.message());
  BRISK_TRY(copy_model_side_files(in, out, ConfigFile::Skip));
  BRISK_TRY(write_text_file(out / "config.json", config_json.dump(2) + "\n"));
  return write_safetensors(out / "model.safetensors", tensors, {{"format", "pt"}});
}

}  // namespace brisk::calib
