// The flags `brisk train` and `brisk distill` share (the data, the schedule, evaluation,
// checkpoints, output) and the run with its progress line and report.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "train/training_run.h"

namespace brisk::cli {

struct TrainFlags {
  train::TrainOptions run;
  std::string out, eval;
  std::vector<std::string> data;
  int64_t batch_tokens = 1024;
  std::string qat;  // scheme name; empty: none
  int64_t qat_group = 128;
  bool recompute = false;
  bool json = false;
};

void add_training_flags(CLI::App* sub, TrainFlags& f);

// Refuses training flags that would change nothing (--qat-group without --qat, --eval-* without
// --eval); an empty string when all take effect.
std::string unused_training_flag(const CLI::App& sub, const TrainFlags& f);

// Completes f.run from the flags, runs it with a progress line on a terminal, prints the report
// (JSON with --json). Returns the exit code.
int run_and_report(TrainFlags& f);

}  // namespace brisk::cli
