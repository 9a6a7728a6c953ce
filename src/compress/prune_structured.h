// Structured pruning (issue 22, Minitron-style width pruning): whole units removed from every
// layer and the model written physically smaller, config.json's widths (the family's ShapeKeys)
// set to what is kept. The units:
//  - neurons: MLP intermediate channels (gate/up rows, down columns), scored by the mean
//    |activation| entering down over calibration text times the channel's down column norm (no
//    text: the up row norm times the down column norm);
//  - heads: key-value groups (a kv head with the query heads that read it, so grouped-query
//    attention keeps its shape): q rows, k / v rows, o columns, scored by the mean |attention
//    output| of the group's query heads (entering o) times their o columns' norm (no text: the
//    v rows' norm times the o columns' norm).
// Each role is cut along its tensor-parallel split axis (SplitAxis: outputs of gate/up/q/k/v,
// inputs of down/o), the same units for every role of a layer; every layer keeps the same count
// (the config has one width).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "compress/calibration.h"

namespace brisk::calib {

enum class StructuredUnit { Neurons, Heads };
Result<StructuredUnit> parse_structured_unit(const std::string& name);  // "neurons", "heads"

struct StructuredPruneOptions {
  StructuredUnit unit = StructuredUnit::Neurons;
  double ratio = 0.25;   // fraction of each layer's units removed
  int64_t multiple = 8;  // neurons: the kept width rounded down to a multiple of this (at least one)
  CalibrationOptions calibration;
  int threads = 0;
};

struct StructuredPruneReport {
  int64_t units_before = 0, units_after = 0;  // MLP width, or kv heads
  int64_t layers = 0, calibration_tokens = 0;
  uint64_t params_before = 0, params_after = 0;
};

// `tokens` empty: weight norms only. The output folder must be absent or empty.
Result<StructuredPruneReport> prune_structured(const std::filesystem::path& in, const std::filesystem::path& out,
                                               const std::vector<int32_t>& tokens, const StructuredPruneOptions& options);

}  // namespace brisk::calib
