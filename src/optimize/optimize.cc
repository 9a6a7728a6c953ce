#include "optimize/optimize.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <set>

#include "compress/quantize_model.h"
#include "core/mapped_file.h"
#include "formats/model_folder.h"
#include "models/kv_cache.h"
#include "models/model_config.h"
#include "optimize/kernel_costs.h"
#include "optimize/recipe_frontier.h"
#include "optimize/recipe_writer.h"
#include "optimize/score_cache.h"
#include "runtime/bench.h"
#include "runtime/engine.h"
#include "runtime/perplexity.h"

namespace brisk::recipe {

namespace fs = std::filesystem;

namespace {

// Decode timing of a measured recipe: a short prompt, then enough steps for a stable median (32
// steps x 3 runs spread +-15% between runs of one sotu-llama folder; 128 x 5 is ~0.3 s there).
// Larger models take fewer steps: as many as fill kBenchRepetitionSeconds at the rate a probe of
// kBenchProbeTokens measures, at least that many (a tinyllama-1.1b step takes ~10-80 ms on a CPU).
constexpr int64_t kBenchPrompt = 32, kBenchTokens = 128, kBenchRepetitions = 5, kBenchProbeTokens = 16;
constexpr double kBenchRepetitionSeconds = 0.3;
// Extra timing rounds when rates decide the answer (each recipe: its first rate and these).
constexpr int kRateRounds = 2;
// The KL-to-perplexity scale is fitted on single recipes up to this many times the budget's
// ln(1 + P); the chosen point is re-aimed from its measurement at most this many times.
constexpr double kFitRange = 4;
constexpr int kBudgetRetries = 4;

uint64_t folder_weight_bytes(const fs::path& dir) {
  uint64_t bytes = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".safetensors") bytes += e.file_size(ec);
  return bytes;
}

// Runs the user's command with {model} replaced by the folder; its score is the last number it
// printed on standard output.
Result<double> run_eval_cmd(const std::string& command, const fs::path& dir) {
  std::string cmd = command;
  for (size_t at = cmd.find("{model}"); at != std::string::npos; at = cmd.find("{model}", at + dir.string().size()))
    cmd.replace(at, 7, dir.string());
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return make_error("--eval-cmd: cannot run '" + cmd + "'");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  const int status = pclose(pipe);
  if (status != 0) return make_error("--eval-cmd '" + cmd + "' exited with status " + std::to_string(status));
  std::optional<double> last;
  for (size_t i = 0; i < out.size();) {
    char* end = nullptr;
    const double v = std::strtod(out.c_str() + i, &end);
    if (end != out.c_str() + i && std::isfinite(v)) {
      last = v;
      i = size_t(end - out.c_str());
    } else {
      ++i;
    }
  }
  if (!last) return make_error("--eval-cmd '" + cmd + "' printed no number");
  return *last;
}

// Perplexity on the eval tokens and decode rate of a model folder, on --device.
class Evaluator {
 public:
  // context: the positions an engine holds, the eval windows' and the decode timing's (the
  // timing's steps shrink to fit a model of fewer positions).
  Evaluator(const OptimizeOptions& o, std::vector<int32_t> tokens, int64_t context)
      : o_(o), tokens_(std::move(tokens)), context_(context) {}

  Result<Measured> measure(const fs::path& dir) const {
    BRISK_ASSIGN(engine, open(dir));
    BRISK_ASSIGN(ppl, perplexity(*engine, tokens_, o_.eval_ctx));
    Measured m{ppl.ppl, 0, 0, folder_weight_bytes(dir), std::nullopt};
    BRISK_TRY(time(*engine, m));
    if (!o_.eval_cmd.empty()) {
      engine.reset();  // the command may load the model itself
      BRISK_ASSIGN(score, run_eval_cmd(o_.eval_cmd, dir));
      m.eval_cmd_score = score;
    }
    return m;
  }

  // Decode and prefill rates only (for the alternating rounds).
  Status retime(const fs::path& dir, Measured& m) const {
    BRISK_ASSIGN(engine, open(dir));
    return time(*engine, m);
  }

  // The perplexity alone, with the KV cache in `kv`.
  Result<double> ppl_with_cache(const fs::path& dir, KvDtype kv) const {
    BRISK_ASSIGN(engine, open(dir, kv));
    BRISK_ASSIGN(ppl, perplexity(*engine, tokens_, o_.eval_ctx));
    return ppl.ppl;
  }

 private:
  Result<std::unique_ptr<Engine>> open(const fs::path& dir, std::optional<KvDtype> kv = std::nullopt) const {
    EngineOptions e;
    e.model_dir = dir;
    e.backend = o_.backend;
    e.context = context_;
    e.max_rows = std::min<int64_t>(o_.eval_ctx, 512);
    e.kv_dtype = kv;
    return Engine::open(e);
  }

  Status time(Engine& engine, Measured& m) const {
    const int64_t most_steps = context_ - kBenchPrompt;
    BenchOptions b;
    b.prompt_tokens = kBenchPrompt;
    b.new_tokens = std::min(kBenchProbeTokens, most_steps);
    b.repetitions = 1;
    b.measure_limits = false;
    BRISK_ASSIGN(probe, run_bench(engine, b));
    b.new_tokens = std::min(most_steps, std::clamp<int64_t>(int64_t(kBenchRepetitionSeconds * probe.decode_tok_s_median),
                                                            kBenchProbeTokens, kBenchTokens));
    b.repetitions = kBenchRepetitions;
    BRISK_ASSIGN(bench, run_bench(engine, b));
    m.decode_tok_s = bench.decode_tok_s_median;
    m.prefill_tok_s = bench.prefill_tok_s_median;
    return ok_status();
  }

  const OptimizeOptions& o_;
  std::vector<int32_t> tokens_;
  int64_t context_;
};

// Times every recipe kRateRounds more times, in a different order each round, and keeps the
// median of its rates.
Status retime_in_rounds(const Evaluator& evaluator, std::vector<std::pair<fs::path, Measured*>>& recipes,
                        const std::function<void(int64_t, int64_t)>& progress) {
  const size_t n = recipes.size();
  std::vector<std::vector<double>> decode(n), prefill(n);
  for (size_t i = 0; i < n; ++i) {
    decode[i].push_back(recipes[i].second->decode_tok_s);
    prefill[i].push_back(recipes[i].second->prefill_tok_s);
  }
  for (int round = 0; round < kRateRounds; ++round)
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (k + size_t(round)) % n;
      Measured m;
      BRISK_TRY(evaluator.retime(recipes[i].first, m));
      decode[i].push_back(m.decode_tok_s);
      prefill[i].push_back(m.prefill_tok_s);
      progress(int64_t(size_t(round) * n + k + 1), int64_t(size_t(kRateRounds) * n));
    }
  for (size_t i = 0; i < n; ++i) {
    recipes[i].second->decode_tok_s = median(decode[i]);
    recipes[i].second->prefill_tok_s = median(prefill[i]);
  }
  return ok_status();
}

// The scored search space: per group x candidate its KL, bytes and timed kernel seconds, and the
// fits that turn a recipe's sums into predictions (a recipe: a candidate index per group).
struct ScoredSpace {
  const Sensitivity& sens;
  const GroupTimes& times;
  const std::vector<Candidate>& candidates;
  std::vector<std::vector<std::optional<double>>> bytes;  // set where the candidate holds the group
  double fixed_bytes = 0;  // the model's bytes outside the searched matrices
  double base_ppl = 0, scale = 1;  // ppl = base_ppl * exp(scale * damage)
  double rest = 0, slope = 1;      // decode step seconds = rest + slope * kernel seconds

  size_t groups() const { return sens.groups.size(); }
  bool available(size_t g, size_t c) const { return bytes[g][c].has_value(); }
  double damage(const std::vector<int>& choice) const { return sum(choice, [&](size_t g, size_t c) { return *sens.kl[g][c]; }); }
  double kernel_seconds(const std::vector<int>& choice) const {
    return sum(choice, [&](size_t g, size_t c) { return *times.decode[g][c]; });
  }
  double predicted_bytes(const std::vector<int>& choice) const {
    return fixed_bytes + sum(choice, [&](size_t g, size_t c) { return *bytes[g][c]; });
  }
  double predicted_ppl(double damage_sum) const { return base_ppl * std::exp(scale * damage_sum); }
  double predicted_decode_tok_s(const std::vector<int>& choice) const { return 1.0 / (rest + slope * kernel_seconds(choice)); }

  Json point_json(const std::vector<int>& choice) const {
    Json recipe = Json::array();
    for (size_t g = 0; g < groups(); ++g) recipe.push_back(candidates[size_t(choice[g])].name);
    const double d = damage(choice);
    return Json{{"recipe", recipe}, {"kl_sum", d}, {"predicted_ppl", predicted_ppl(d)},
                {"predicted_bytes", uint64_t(predicted_bytes(choice))},
                {"predicted_decode_tok_s", predicted_decode_tok_s(choice)}};
  }
  // Each group with its per-candidate scores and costs.
  Json groups_json() const {
    Json out = Json::array();
    for (size_t g = 0; g < groups(); ++g) {
      Json kl = Json::object(), b = Json::object(), dec = Json::object(), pre = Json::object();
      for (size_t c = 0; c < candidates.size(); ++c) {
        if (!available(g, c)) continue;
        const std::string& name = candidates[c].name;
        kl[name] = *sens.kl[g][c];
        b[name] = uint64_t(*bytes[g][c]);
        dec[name] = *times.decode[g][c] * 1e6;
        pre[name] = *times.prefill_per_token[g][c] * 1e6;
      }
      const SearchGroup& group = sens.groups[g];
      out.push_back({{"label", group.label()}, {"layer", group.layer}, {"kind", linear_group_name(group.kind)},
                     {"params", group.params()}, {"kl", kl}, {"bytes", b}, {"decode_us", dec},
                     {"prefill_us_per_token", pre}});
    }
    return out;
  }

 private:
  template <class Value>
  double sum(const std::vector<int>& choice, Value value) const {
    double total = 0;
    for (size_t g = 0; g < groups(); ++g) total += value(g, size_t(choice[g]));
    return total;
  }
};

// Steps 1 and 2: the scores and kernel timings, from --scores when it holds them for these
// inputs, else measured (and then kept there).
struct ScoredGroups {
  ScoreKey key;
  Scores scores;
  bool reused = false;  // the scores read from --scores (the timings too, unless it had none)
};
Result<ScoredGroups> score_and_time(const OptimizeOptions& o, const std::vector<int32_t>& calib_tokens,
                                    const std::function<void(const char*, int64_t, int64_t)>& report) {
  std::error_code ec;
  ScoreKey key;
  key.model = fs::weakly_canonical(o.model, ec).string();
  key.model_bytes = folder_weight_bytes(o.model);
  key.calib = fs::weakly_canonical(o.calib, ec).string();
  key.calib_bytes = fs::file_size(o.calib, ec);
  key.device = o.backend.device;
  for (const Candidate& c : o.candidates) key.candidates.push_back(c.name);
  key.window = o.sensitivity.window;
  key.tokens = o.sensitivity.tokens;
  ScoredGroups out;
  out.key = key;
  if (!o.scores_file.empty()) {
    BRISK_ASSIGN(kept, load_scores(o.scores_file, key, o.candidates));
    if (kept) {
      out.scores = std::move(*kept);
      out.reused = true;
    }
  }
  if (!out.reused) {
    BRISK_ASSIGN(measured, measure_sensitivity(o.model, calib_tokens, o.candidates, o.sensitivity, o.backend,
                                               [&](int64_t d, int64_t t) { report("score", d, t); }));
    out.scores.sensitivity = std::move(measured);
    if (!o.scores_file.empty()) BRISK_TRY(save_scores(o.scores_file, key, out.scores, o.candidates));
  }
  if (!out.scores.times) {
    report("time", 0, 1);
    out.scores.times = time_groups(out.scores.sensitivity.groups, o.candidates, o.backend, key.model_bytes);
    report("time", 1, 1);
    if (!o.scores_file.empty()) BRISK_TRY(save_scores(o.scores_file, key, out.scores, o.candidates));
  }
  return out;
}

}  // namespace

const char* budget_name(BudgetKind budget) {
  switch (budget) {
    case BudgetKind::Ppl: return "ppl";
    case BudgetKind::Bits: return "bits";
    case BudgetKind::Bytes: return "bytes";
    case BudgetKind::TokS: return "tok-s";
  }
  return "?";
}

Result<Objective> parse_objective(const std::string& name) {
  for (Objective o : {Objective::Decode, Objective::Prefill, Objective::Size})
    if (name == objective_name(o)) return o;
  return make_error("unknown objective '" + name + "' (decode, prefill, size)");
}

const char* objective_name(Objective objective) {
  switch (objective) {
    case Objective::Decode: return "decode";
    case Objective::Prefill: return "prefill";
    case Objective::Size: return "size";
  }
  return "?";
}

// --space kv: the answer measured with each KV cache type; the narrowest whose perplexity stays
// within the limit is chosen (of two as narrow, the lower perplexity), the cache the answer was
// measured with (the model's own default, f32 unless its config names one) when none does. The
// weights were chosen first, so the cache gets what budget they leave: a narrower cache holds
// more positions (--kv-mem) and reads fewer bytes a step at long context, not at the
// 32-token decode timing, so it is judged by its bytes, not by a rate.
struct KvChoice {
  KvDtype chosen = KvDtype::F32;
  Json json;
};
Result<KvChoice> choose_kv_cache(const ModelConfig& c, const std::vector<KvDtype>& tried, double measured_ppl,
                                 double ppl_limit, const std::function<Result<double>(KvDtype)>& ppl_with) {
  auto bytes_per_token = [&](KvDtype t) {
    return double(KvCache::bytes_per_block(c.n_layers, c.n_kv_heads, c.head_dim, t)) / double(KvCache::kBlockSize);
  };
  KvChoice out;
  out.chosen = c.kv_dtype.value_or(KvDtype::F32);
  double chosen_ppl = measured_ppl;
  Json measured = Json::array(
      {{{"dtype", kv_dtype_name(out.chosen)}, {"ppl", measured_ppl}, {"bytes_per_token", bytes_per_token(out.chosen)}}});
  const KvDtype as_measured = out.chosen;
  for (KvDtype t : tried) {
    if (t == as_measured) continue;
    BRISK_ASSIGN(ppl, ppl_with(t));
    measured.push_back({{"dtype", kv_dtype_name(t)}, {"ppl", ppl}, {"bytes_per_token", bytes_per_token(t)}});
    const bool narrower = kv_element_bytes(t) < kv_element_bytes(out.chosen);
    const bool as_narrow_better = kv_element_bytes(t) == kv_element_bytes(out.chosen) && ppl < chosen_ppl;
    if (ppl <= ppl_limit && (narrower || as_narrow_better)) out.chosen = t, chosen_ppl = ppl;
  }
  out.json = {{"measured", measured}, {"chosen", kv_dtype_name(out.chosen)}};
  return out;
}

Result<Json> optimize(const OptimizeOptions& o, const OptimizeProgress& progress) {
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  auto report = [&](const char* stage, int64_t done, int64_t total) {
    if (progress) progress(stage, done, total);
  };
  std::error_code ec;
  if (fs::exists(o.out, ec) && !fs::is_empty(o.out, ec))
    return make_error(o.out.string() + ": output folder exists and is not empty");
  if (o.candidates.empty() || !keeps(o.candidates.front()))
    return make_error("optimize: the candidates must start with keep");
  if (o.recover_steps > 0)
    for (const Candidate& c : o.candidates)
      if (c.low_rank)
        return make_error("--recover trains whole matrices, not low-rank factors (candidate " + c.name +
                          "): leave lowrank out of --space, or drop --recover");
  if (!o.kv_candidates.empty() && o.budget != BudgetKind::Ppl)
    return make_error("--space kv chooses the KV cache under --budget-ppl only (the other budgets minimise the "
                      "perplexity, which a narrower cache can only raise)");
  if (!o.scores_file.empty())
    for (const Candidate& c : o.candidates)
      if (reads_inputs(c))
        return make_error("--scores keeps no calibration inputs, which candidate " + c.name +
                          " needs when written: leave it out of --space, or drop --scores");

  // Checked before the long passes: every measured recipe runs --eval-ctx positions.
  BRISK_ASSIGN(config, load_model_config(o.model / "config.json"));
  if (config.max_position > 0 && o.eval_ctx > config.max_position)
    return make_error("--eval-ctx " + std::to_string(o.eval_ctx) + " exceeds the model's context of " +
                      std::to_string(config.max_position) + " tokens");
  // Tokens: the calibration text scores, the eval text measures (the base model's tokenizer).
  BRISK_ASSIGN(tokenizer, Tokenizer::load(o.model));
  auto tokens_of = [&](const fs::path& file) -> Result<std::vector<int32_t>> {
    BRISK_ASSIGN(text, read_text_file(file));
    return tokenizer->encode(text, AddSpecial::No);
  };
  BRISK_ASSIGN(calib_tokens, tokens_of(o.calib));
  BRISK_ASSIGN(eval_tokens, tokens_of(o.eval));
  if (int64_t(eval_tokens.size()) < o.eval_ctx)
    return make_error(o.eval.string() + ": " + std::to_string(eval_tokens.size()) + " tokens, fewer than one --eval-ctx window of " +
                      std::to_string(o.eval_ctx));
  if (o.eval_tokens > 0 && int64_t(eval_tokens.size()) > o.eval_tokens) eval_tokens.resize(size_t(o.eval_tokens));
  int64_t context = std::max(o.eval_ctx, kBenchPrompt + kBenchTokens);
  if (config.max_position > 0) context = std::min(context, config.max_position);
  if (context <= kBenchPrompt + 1)
    return make_error("optimize: the model's context of " + std::to_string(context) + " positions cannot hold the " +
                      std::to_string(kBenchPrompt) + "-token prompt of the decode timing");
  const Evaluator evaluator(o, eval_tokens, context);

  // 1. Scores and 2. costs.
  BRISK_ASSIGN(scored, score_and_time(o, calib_tokens, report));
  const Sensitivity& sens = scored.scores.sensitivity;
  const GroupTimes& times = *scored.scores.times;
  const size_t G = sens.groups.size(), C = o.candidates.size();
  ScoredSpace space{sens, times, o.candidates, std::vector<std::vector<std::optional<double>>>(G, std::vector<std::optional<double>>(C))};
  double params = 0, keep_bytes = 0;
  for (size_t g = 0; g < G; ++g) {
    params += double(sens.groups[g].params());
    for (size_t c = 0; c < C; ++c)
      if (sens.bytes[g][c] && sens.kl[g][c]) space.bytes[g][c] = double(*sens.bytes[g][c]);
    keep_bytes += *space.bytes[g][0];
  }

  // Written and measured recipes are kept in --scores (and taken from it) when their folders are
  // not needed again: not when rates decide, which time every measured recipe again in rounds.
  const bool rates_decide = o.budget == BudgetKind::TokS || (o.budget == BudgetKind::Ppl && o.objective != Objective::Size);
  const bool keep_measured = !o.scores_file.empty() && !rates_decide;
  const Json under = {{"eval", fs::weakly_canonical(o.eval, ec).string()}, {"eval_bytes", fs::file_size(o.eval, ec)},
                      {"eval_tokens", int64_t(eval_tokens.size())}, {"eval_ctx", o.eval_ctx},
                      {"eval_cmd", o.eval_cmd}, {"threads", o.backend.threads},
                      {"bf16_fast", o.backend.bf16 == Bf16Precision::Fast}};
  if (keep_measured && scored.scores.measured_under != under) {  // another evaluation: measure again
    scored.scores.measured.clear();
    scored.scores.measured_under = under;
  }
  int64_t measured_reused = 0;
  auto measured_once = [&](const std::string& recipe, const std::function<Result<Measured>()>& measure) -> Result<Measured> {
    if (keep_measured)
      if (auto kept = scored.scores.measured.find(recipe); kept != scored.scores.measured.end()) {
        ++measured_reused;
        return kept->second;
      }
    BRISK_ASSIGN(m, measure());
    if (keep_measured) {
      scored.scores.measured[recipe] = m;
      BRISK_TRY(save_scores(o.scores_file, scored.key, scored.scores, o.candidates));
    }
    return m;
  };
  auto recipe_name = [&](const std::vector<int>& choice) {
    std::string name;
    for (int c : choice) (name += name.empty() ? "" : ",") += o.candidates[size_t(c)].name;
    return name;
  };

  // The base model and the single-technique recipes, measured.
  report("verify", 0, 1);
  BRISK_ASSIGN(base, measured_once("base", [&] { return evaluator.measure(o.model); }));
  space.fixed_bytes = double(base.bytes) - keep_bytes;
  space.base_ppl = base.ppl;
  const fs::path target = o.out.has_filename() ? o.out : o.out.parent_path();  // "-o out/" too
  const fs::path scratch = folder_beside(o.out, ".optimize");
  fs::remove_all(scratch, ec);
  const RemovedOnExit cleanup(scratch);
  int written = 0;
  // Writes the recipe (a candidate index per group) and measures it; returns its folder too.
  // Rates decide the answer: every measured recipe is timed again later, so its folder stays.
  // Otherwise each folder goes once measured (an 8B model's would take 4-16 GB each) and the
  // answer is written again at the end.
  auto write = [&](const std::vector<int>& choice, const fs::path& out) {
    return write_recipe(o.model, out, sens, o.candidates, choice, o.backend.threads);
  };
  // Writes the recipe and measures it; returns its folder too (removed already unless rates decide).
  auto build = [&](const std::vector<int>& choice) -> Result<std::pair<fs::path, Measured>> {
    const fs::path dir = scratch / std::to_string(written++);
    BRISK_ASSIGN(m, measured_once(recipe_name(choice), [&]() -> Result<Measured> {
      BRISK_TRY(write(choice, dir));
      BRISK_ASSIGN(measured, evaluator.measure(dir));
      if (!rates_decide) fs::remove_all(dir, ec);
      return measured;
    }));
    return std::make_pair(dir, m);
  };
  std::vector<double> fit_x, fit_y;
  std::vector<std::pair<std::vector<int>, Measured>> single_results;
  std::vector<fs::path> single_dirs;
  for (size_t c = 1; c < C; ++c) {
    std::vector<int> choice(G, 0);
    for (size_t g = 0; g < G; ++g)
      if (space.available(g, c)) choice[g] = int(c);
    BRISK_ASSIGN(built, build(choice));
    fit_x.push_back(space.damage(choice));
    fit_y.push_back(std::log(built.second.ppl / base.ppl));
    single_results.emplace_back(choice, built.second);
    single_dirs.push_back(built.first);
    report("verify", int64_t(c), int64_t(C));
  }
  // ln(ppl / base) ~ scale * summed KL, the scale fitted through the origin on the singles; under
  // a perplexity budget on those that land near it (at most kFitRange times the allowed
  // ln(1 + budget)): the relation bends over the range (sotu-llama: the scale fitted on singles
  // up to +47% (70% pruning) was 0.40, on those up to +3% 0.6-0.7).
  {
    std::vector<double> near_x, near_y;
    for (size_t i = 0; i < fit_x.size(); ++i)
      if (o.budget != BudgetKind::Ppl || fit_y[i] <= kFitRange * std::log1p(o.budget_value))
        near_x.push_back(fit_x[i]), near_y.push_back(fit_y[i]);
    std::optional<double> scale = slope_through_origin(near_x, near_y);
    if (!scale) scale = slope_through_origin(fit_x, fit_y);
    space.scale = scale.value_or(1.0);
  }
  // A decode step ~ rest + slope * (the groups' timed matmul seconds), fitted by least squares on
  // the base model and the singles' measured steps: the timed kernels rank the choices, the whole
  // steps put them on the clock (attention, norms and the head's sampling are the rest).
  std::vector<double> step_x = {space.kernel_seconds(std::vector<int>(G, 0))}, step_y = {1.0 / base.decode_tok_s};
  for (const auto& [choice, m] : single_results) {
    step_x.push_back(space.kernel_seconds(choice));
    step_y.push_back(1.0 / m.decode_tok_s);
  }
  Line step{step_y[0] - step_x[0], 1.0};  // without a usable fit: the base step's rest, slope 1
  if (auto fit = least_squares_line(step_x, step_y); fit && fit->slope > 0) step = *fit;
  space.slope = step.slope;
  space.rest = std::max(0.0, step.intercept);

  // 3. The frontier on the axis the budget or the objective names.
  enum class Axis { Bytes, Decode, Prefill };
  Axis axis = Axis::Bytes;
  if (o.budget == BudgetKind::TokS || (o.budget == BudgetKind::Ppl && o.objective == Objective::Decode)) axis = Axis::Decode;
  if (o.budget == BudgetKind::Ppl && o.objective == Objective::Prefill) axis = Axis::Prefill;
  std::vector<std::vector<std::optional<Option>>> options(G, std::vector<std::optional<Option>>(C));
  for (size_t g = 0; g < G; ++g)
    for (size_t c = 0; c < C; ++c) {
      if (!space.available(g, c)) continue;
      const double cost = axis == Axis::Bytes     ? *space.bytes[g][c]
                          : axis == Axis::Decode ? *times.decode[g][c]
                                                 : *times.prefill_per_token[g][c];
      options[g][c] = Option{cost, *sens.kl[g][c]};
    }
  const std::vector<FrontierPoint> frontier = pareto_frontier(options);
  const FrontierPoint* chosen = nullptr;
  double ppl_limit = 0;
  switch (o.budget) {
    case BudgetKind::Ppl:
      ppl_limit = base.ppl * (1 + o.budget_value);
      chosen = least_cost_within_damage(frontier, std::log1p(o.budget_value) / space.scale);
      break;
    case BudgetKind::Bits: chosen = least_damage_within(frontier, o.budget_value / 8 * params); break;
    case BudgetKind::Bytes: chosen = least_damage_within(frontier, o.budget_value - space.fixed_bytes); break;
    case BudgetKind::TokS: chosen = least_damage_within(frontier, (1.0 / o.budget_value - space.rest) / space.slope); break;
  }
  if (!chosen)
    return make_error(std::string("optimize: no recipe in the search space meets --budget-") + budget_name(o.budget) + " " +
                      std::to_string(o.budget_value) + " (the frontier spans " + std::to_string(frontier.size()) + " recipes)");

  // 4. Measured: the chosen point, its neighbours and points spread over the frontier (the
  // prediction's rank check); under a perplexity budget the chosen point's measurement then
  // re-aims the choice (below).
  size_t index = size_t(chosen - frontier.data());
  const size_t n = frontier.size(), spread = size_t(std::max(o.verify_points, 0));
  std::set<size_t> to_verify = {index};
  if (index > 0) to_verify.insert(index - 1);
  if (index + 1 < n) to_verify.insert(index + 1);
  for (size_t k = 0; k < spread && n > 1; ++k) to_verify.insert(k * (n - 1) / std::max<size_t>(spread - 1, 1));
  std::map<size_t, std::pair<fs::path, Measured>> verified;
  auto verify = [&](size_t i) -> Status {
    if (verified.count(i)) return ok_status();
    BRISK_ASSIGN(built, build(frontier[i].choice));
    verified[i] = built;
    report("verify", int64_t(verified.size()), int64_t(to_verify.size()));
    return ok_status();
  };
  for (size_t i : to_verify) BRISK_TRY(verify(i));
  const size_t predicted_index = index;
  // The chosen point as measured re-aims the search (a secant step): the scale is re-fitted on that
  // point alone (its measured ln(ppl / base) over its summed KL) and the point the budget allows
  // under it is measured next -- toward less damage (at least one step) when it measured over the
  // budget, toward more when it measured under and the re-fitted scale allows more. Up to
  // kBudgetRetries times, until the point aimed at is one already measured.
  if (o.budget == BudgetKind::Ppl)
    for (int retry = 0; retry < kBudgetRetries; ++retry) {
      const double measured_ppl = verified.at(index).second.ppl;
      if (measured_ppl <= base.ppl) break;  // no damage measured: nothing to re-fit the scale on
      const double local = std::log(measured_ppl / base.ppl) / std::max(frontier[index].damage, 1e-12);
      const FrontierPoint* allowed = least_cost_within_damage(frontier, std::log1p(o.budget_value) / local);
      size_t next = allowed ? size_t(allowed - frontier.data()) : n - 1;
      if (measured_ppl > ppl_limit) next = std::max(next, index + 1);
      if (next >= n || verified.count(next)) break;
      index = next;
      BRISK_TRY(verify(index));
    }

  // Rates compared across recipes are noisy on a shared machine (one sotu-llama folder's decode
  // rate measured 2,368 and 3,625 tok/s minutes apart): when a rate decides, every measured recipe
  // is timed again in alternating rounds, and its rate is the median of its rounds.
  if (rates_decide) {
    std::vector<std::pair<fs::path, Measured*>> all;
    for (auto& [i, v] : verified) all.emplace_back(v.first, &v.second);
    for (size_t i = 0; i < single_results.size(); ++i) all.emplace_back(single_dirs[i], &single_results[i].second);
    BRISK_TRY(retime_in_rounds(evaluator, all, [&](int64_t d, int64_t t) { report("rates", d, t); }));
  }

  // The answer is the best measured recipe that meets the budget as measured: the verified
  // frontier points and the single-technique recipes all compete (a prediction off by a little
  // must not hand back a recipe that a plain one beats).
  const double bits_cap = o.budget_value / 8 * params;
  auto meets = [&](const std::vector<int>& choice, const Measured& m) {
    switch (o.budget) {
      case BudgetKind::Ppl: return m.ppl <= ppl_limit;
      case BudgetKind::Bits: return space.predicted_bytes(choice) - space.fixed_bytes <= bits_cap;
      case BudgetKind::Bytes: return double(m.bytes) <= o.budget_value;
      case BudgetKind::TokS: return m.decode_tok_s >= o.budget_value;
    }
    return false;
  };
  // Lower is better.
  auto objective_value = [&](const Measured& m) {
    if (o.budget != BudgetKind::Ppl) return m.ppl;
    switch (o.objective) {
      case Objective::Decode: return -m.decode_tok_s;
      case Objective::Prefill: return -m.prefill_tok_s;
      case Objective::Size: return double(m.bytes);
    }
    return 0.0;
  };
  struct Pick {
    std::string source;
    const std::vector<int>* choice;
    const Measured* measured;
    fs::path dir;
  };
  std::optional<Pick> best;
  auto consider = [&](Pick p) {
    if (meets(*p.choice, *p.measured) && (!best || objective_value(*p.measured) < objective_value(*best->measured)))
      best = p;
  };
  for (const auto& [i, v] : verified) consider({"frontier " + std::to_string(i), &frontier[i].choice, &v.second, v.first});
  for (size_t i = 0; i < single_results.size(); ++i)
    consider({"all " + o.candidates[i + 1].name, &single_results[i].first, &single_results[i].second, single_dirs[i]});
  if (!best)
    return make_error(std::string("optimize: no measured recipe meets --budget-") + budget_name(o.budget) + " " +
                      std::to_string(o.budget_value) + " (the predictions did; the measurements did not)");

  // --recover: the answer trained toward the base model (quantization-aware distillation) and
  // measured; it replaces the answer when its perplexity is lower (same formats, so the same bytes
  // and, within the timing noise, the same rates).
  Json recovery = nullptr;
  std::optional<Measured> recovered;
  const fs::path recovered_dir = scratch / "recovered";
  if (o.recover_steps > 0) {
    report("recover", 0, 1);
    RecoveryOptions r;
    r.steps = o.recover_steps;
    r.data = o.calib;
    r.window = o.sensitivity.window;
    r.scratch = scratch;
    r.threads = o.backend.threads;
    BRISK_ASSIGN(trained, write_recovered_recipe(o.model, recovered_dir, sens, o.candidates, *best->choice, r));
    BRISK_ASSIGN(m, evaluator.measure(recovered_dir));
    recovered = m;
    recovery = {{"steps", trained.steps}, {"tokens", trained.tokens}, {"seconds", trained.seconds},
                {"initial_loss", trained.initial_loss}, {"final_loss", trained.final_loss}, {"measured", measured_json(m)}};
    report("recover", 1, 1);
  }
  const bool use_recovered = recovered && recovered->ppl < best->measured->ppl;
  if (recovered) recovery["used"] = use_recovered;

  // The record.
  Json frontier_json = Json::array();
  for (size_t i = 0; i < frontier.size(); ++i) {
    Json p = space.point_json(frontier[i].choice);
    p["cost"] = frontier[i].cost;
    if (auto v = verified.find(i); v != verified.end()) p["measured"] = measured_json(v->second.second);
    frontier_json.push_back(p);
  }
  Json singles = Json::array();
  for (size_t i = 0; i < single_results.size(); ++i) {
    Json p = space.point_json(single_results[i].first);
    p["name"] = o.candidates[i + 1].name;
    p["measured"] = measured_json(single_results[i].second);
    singles.push_back(p);
  }
  std::vector<double> predicted, measured;
  for (const auto& [i, v] : verified) {
    predicted.push_back(space.predicted_ppl(frontier[i].damage));
    measured.push_back(v.second.ppl);
  }
  for (size_t i = 0; i < single_results.size(); ++i) {
    predicted.push_back(space.predicted_ppl(fit_x[i]));
    measured.push_back(single_results[i].second.ppl);
  }
  const std::optional<double> rank = spearman(predicted, measured);
  Json chosen_json = space.point_json(*best->choice);
  chosen_json["source"] = best->source;
  chosen_json["predicted_frontier_index"] = predicted_index;
  chosen_json["measured"] = measured_json(use_recovered ? *recovered : *best->measured);
  if (use_recovered) chosen_json["measured_before_recovery"] = measured_json(*best->measured);
  chosen_json["within_budget"] = true;
  Json candidates = Json::array();
  for (const Candidate& c : o.candidates) candidates.push_back(c.name);

  // The chosen folder (written again where it was removed after measuring), its KV cache chosen
  // with --space kv, becomes the output.
  fs::path answer = use_recovered ? recovered_dir : best->dir;
  if (!fs::exists(answer, ec)) {
    answer = scratch / "answer";
    BRISK_TRY(write(*best->choice, answer));
  }
  Json kv_json = nullptr;
  if (!o.kv_candidates.empty()) {
    const int64_t total = int64_t(o.kv_candidates.size());
    int64_t done = 0;
    report("kv", done, total);
    const double answer_ppl = use_recovered ? recovered->ppl : best->measured->ppl;
    BRISK_ASSIGN(kv, choose_kv_cache(config, o.kv_candidates, answer_ppl, ppl_limit, [&](KvDtype t) {
      auto ppl = evaluator.ppl_with_cache(answer, t);
      report("kv", ++done, total);
      return ppl;
    }));
    if (kv.chosen != config.kv_dtype.value_or(KvDtype::F32)) {
      BRISK_ASSIGN(answer_config, read_json_file(answer / "config.json"));
      answer_config["brisk_kv_dtype"] = kv_dtype_name(kv.chosen);
      BRISK_TRY(write_text_file(answer / "config.json", answer_config.dump(2) + "\n"));
    }
    kv_json = kv.json;
  }
  if (fs::exists(target, ec)) fs::remove(target, ec);  // the empty folder checked above
  fs::rename(answer, target, ec);
  if (ec) return make_error(target.string() + ": cannot move the chosen model into place: " + ec.message());

  return Json{{"model", o.model.string()}, {"out", target.string()},
              {"budget", {{"kind", budget_name(o.budget)}, {"value", o.budget_value}}},
              {"objective", objective_name(o.objective)}, {"frontier_axis", axis == Axis::Bytes ? "bytes" : axis == Axis::Decode ? "decode_s" : "prefill_s_per_token"},
              {"candidates", candidates}, {"calibration_tokens", sens.tokens}, {"eval_tokens", eval_tokens.size()},
              {"device", o.backend.device},
              {"scores", o.scores_file.empty() ? Json(nullptr)
                                               : Json{{"file", o.scores_file.string()}, {"reused", scored.reused},
                                                      {"measured_reused", measured_reused}}},
              {"eval_ctx", o.eval_ctx}, {"kl_to_log_ppl_scale", space.scale},
              {"decode_step_fit", {{"rest_s", space.rest}, {"slope", space.slope}}}, {"base", measured_json(base)},
              {"groups", space.groups_json()}, {"frontier", frontier_json}, {"single_technique", singles}, {"chosen", chosen_json},
              {"rank_correlation", rank ? Json(*rank) : Json(nullptr)}, {"recovery", recovery}, {"kv_cache", kv_json},
              {"seconds", elapsed()}};
}

}  // namespace brisk::recipe
