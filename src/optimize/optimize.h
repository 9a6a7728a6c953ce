// brisk optimize (issue 27): chooses a per-layer compression recipe under a budget.
//   1. score: each group of linear layers x each candidate format -> KL of the output on
//      calibration text (optimize/sensitivity.h), once;
//   2. cost: bytes of each choice, and its matmul seconds timed on this machine
//      (optimize/kernel_costs.h); 1 and 2 kept in --scores when given (optimize/score_cache.h);
//   3. solve: the exact Pareto frontier of (cost, summed KL) (optimize/recipe_frontier.h); the
//      summed KL predicts ln(ppl / ppl_base), scaled by a factor fitted to the single-technique
//      recipes' measured perplexities;
//   4. verify: the chosen point and its frontier neighbours written (optimize/recipe_writer.h)
//      and measured (perplexity on the eval text, decode tok/s, bytes), against every
//      single-technique recipe measured the same way; under a perplexity budget the chosen
//      point's measurement re-aims the choice; the output folder is the best measured recipe;
//   5. recover (--recover): that recipe trained toward the base model, kept when it measures lower.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "optimize/sensitivity.h"
#include "formats/json_file.h"

namespace brisk::recipe {

// What the budget bounds: the eval perplexity's relative increase over the base model, the
// searched matrices' bits per weight, the model file's bytes, or the decode rate (a floor).
enum class BudgetKind { Ppl, Bits, Bytes, TokS };
// What the search minimises under a perplexity budget: decode time (one row), prefill time per
// token, or bytes. Under the other budgets it minimises the predicted perplexity.
enum class Objective { Decode, Prefill, Size };

struct OptimizeOptions {
  std::filesystem::path model, out, calib, eval;
  BudgetKind budget = BudgetKind::Ppl;
  double budget_value = 0.02;  // Ppl: +2%; Bits: bits per weight; Bytes: bytes; TokS: tokens/s
  Objective objective = Objective::Decode;
  std::vector<Candidate> candidates;  // search_space(--space): keep first
  std::vector<KvDtype> kv_candidates;  // search_space(--space)'s kv: tried on the answer, narrowest first
  SensitivityOptions sensitivity;
  int64_t eval_ctx = 512;
  int64_t eval_tokens = 16384;  // eval text tokens scored (whole windows from the start); 0: all
  int verify_points = 4;        // frontier points measured around the chosen one
  // A user's task metric: a shell command, {model} replaced by each measured folder, whose last
  // printed number is recorded with that recipe's measurements (reported, not optimised).
  std::string eval_cmd;
  // Recovery: steps of quantization-aware distillation from the base model on the calibration
  // text applied to the answer (optimize/recipe_writer.h); the trained model replaces the answer
  // when it measures a lower perplexity. 0: none.
  int64_t recover_steps = 0;
  // Scores and kernel timings kept in this file (optimize/score_cache.h): read when it exists,
  // written once computed. Empty: none.
  std::filesystem::path scores_file;
  // Where recipes are scored, their kernels timed and they are measured (--device); its CPU
  // threads also make the candidates, write the folders and run the recovery training, which
  // stay on the CPU.
  BackendOptions backend;
};

// progress(stage, done, total): "score", "time", "verify", "rates", "recover", "kv".
using OptimizeProgress = std::function<void(const std::string& stage, int64_t done, int64_t total)>;

// Writes options.out (the chosen model) and returns the whole record: groups with their scores
// and costs, the frontier, every measured recipe, the choice (docs/DESIGN.md, brisk optimize).
Result<Json> optimize(const OptimizeOptions& options, const OptimizeProgress& progress = {});

Result<Objective> parse_objective(const std::string& name);  // "decode", "prefill", "size"
const char* objective_name(Objective objective);
const char* budget_name(BudgetKind budget);  // "ppl", "bits", "bytes", "tok-s" (as the flags say)

}  // namespace brisk::recipe
