// --draft DIR, --lookup N, --draft-max K: speculative decoding (runtime/speculation.h) for
// generate and serve.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "formats/json_file.h"
#include "runtime/engine.h"

namespace brisk::cli {

struct SpeculationFlags {
  std::string draft;      // a draft model folder
  int64_t lookup = 0;     // n-gram size of prompt lookup; 0: off
  int64_t max_draft = kDefaultMaxDraft;
};
void add_speculation_flags(CLI::App* sub, SpeculationFlags& flags);
// Refuses a tuning flag given without a source to tune (--draft-max, serve's --spec-max-batch,
// generate's --spec-off, without --draft or --lookup), naming it.
Status check_speculation_flags(const CLI::App& sub, const SpeculationFlags& flags);

// What the flags ask for (null: no speculation). A draft model is opened like the target
// (`target_options` with the draft's folder: same device and threads) into `draft_engine`.
struct DraftSetup {
  std::unique_ptr<Engine> draft_engine;
  std::unique_ptr<DraftSource> source;
};
Result<DraftSetup> open_draft_source(const SpeculationFlags& flags, Engine& target, EngineOptions target_options);

Json speculation_json(const SpeculationStats& stats);

}  // namespace brisk::cli
