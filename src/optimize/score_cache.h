// brisk optimize --scores FILE: the scoring pass and the kernel timings (steps 1 and 2 of
// optimize.h, most of a large model's run: llama3-8b's 516 group x candidate scores took 228 s on
// an H100) kept in a JSON file. A run writes the scores there as soon as they are computed, and
// again with the timings once those are; when the file exists it reads them instead of computing
// them again: a run stopped during timing or verification (a time limit) resumes from what it
// kept, and other budgets are tried on one scoring pass. The recipes a run writes and measures are
// kept there too (Scores::measured), when their folders are not needed again (rates do not
// decide), so a later run under the same evaluation skips them (llama3-8b: 104-126 s each on the
// H100 host, more than a 10-minute call holds).
// The file is reused only for the same inputs (the key below); anything else is an error naming
// the field, never a silent mix of two runs.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "formats/json_file.h"
#include "optimize/kernel_costs.h"
#include "optimize/sensitivity.h"

namespace brisk::recipe {

// What the scores depend on. The model and calibration text are identified by path and size.
struct ScoreKey {
  std::string model, calib, device;
  uint64_t model_bytes = 0, calib_bytes = 0;
  std::vector<std::string> candidates;
  int64_t window = 0, tokens = 0;  // SensitivityOptions
};

// What a recipe measured for real: perplexity on --eval, decode and prefill rates, weight bytes.
struct Measured {
  double ppl = 0, decode_tok_s = 0, prefill_tok_s = 0;
  uint64_t bytes = 0;
  std::optional<double> eval_cmd_score;  // the last number --eval-cmd printed
};

// As the optimize record and the scores file write it: {"ppl", "decode_tok_s", "prefill_tok_s",
// "bytes"[, "eval_cmd_score"]}.
Json measured_json(const Measured& m);

struct Scores {
  Sensitivity sensitivity;
  std::optional<GroupTimes> times;  // nullopt: not timed yet
  // Recipes already written and measured (step 4), by recipe (its candidates' names by group,
  // comma-separated; "base" for the input model), with the evaluation they were measured under
  // (--eval, its tokens and context, --eval-cmd, threads): a run under the same evaluation takes
  // them instead of measuring again, so a run stopped during verification resumes there too.
  Json measured_under;  // null: none kept
  std::map<std::string, Measured> measured;
};

// Writes the scores, and the timings when there are some (atomically: a temporary file renamed
// into place).
Status save_scores(const std::filesystem::path& file, const ScoreKey& key, const Scores& scores,
                   const std::vector<Candidate>& candidates);

// The scores in `file` when it exists (nullopt when it does not), checked against the key and
// against the groups of the model in key.model (mapped on the CPU, nothing copied), whose matrices
// they take. The file keeps no calibration inputs: optimize refuses --scores with candidates that
// read them (GPTQ's codes, pruning's norms).
Result<std::optional<Scores>> load_scores(const std::filesystem::path& file, const ScoreKey& key,
                                          const std::vector<Candidate>& candidates);

}  // namespace brisk::recipe
