// A training run's state between steps, in one safetensors file: every parameter and its AdamW
// moments in fp32 ("<name>", "<name>.adam_m", "<name>.adam_v"), and in the metadata the step, the
// data order's seed and the position in it, so a resumed run continues bit for bit.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "train/adamw.h"

namespace brisk::train {

struct TrainState {
  struct Parameter {
    std::string name;
    std::vector<int64_t> shape;
    std::vector<float> value;  // fp32 master weights
    AdamWState adam;           // empty moments: not stepped yet
    // A matrix the checkpoint stores [in, out] (GPT-2's Conv1D): held [out, in] like every other
    // matrix, transposed back when the model folder is written.
    bool stored_transposed = false;
  };
  std::vector<Parameter> parameters;
  int64_t step = 0;    // optimizer steps taken
  int64_t epoch = 0;   // TokenWindows epoch and index of the next window
  int64_t window = 0;
  uint64_t seed = 0;   // the data order's seed
};

// Written to `path`.partial, then renamed over `path`: a run stopped mid-write never leaves a
// half-written checkpoint in its place.
Status save_checkpoint(const std::filesystem::path& path, const TrainState& state);
// Errors name the file and what is missing or inconsistent.
Result<TrainState> load_checkpoint(const std::filesystem::path& path);

}  // namespace brisk::train
