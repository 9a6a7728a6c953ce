// Structured pruning of MLP neurons (issue 22, Minitron-style width pruning): each layer keeps the
// (1 - ratio) intermediate channels that matter most, scored by the mean |activation| entering
// the down projection over calibration text times the channel's down-projection column norm (with
// no text: the up-projection row norm times the down column norm), and the model is written
// physically smaller -- gate/up rows and down columns removed, config.json's MLP width (the
// family's ShapeKeys::ffn) set to the kept count. The axis cut is each role's tensor-parallel
// split axis (SplitAxis: gate/up by output columns, down by input rows), the same channels for
// all three. Every layer keeps the same count (one width in the config).
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "compress/calibration.h"

namespace brisk::calib {

struct NeuronPruneOptions {
  double ratio = 0.25;       // fraction of each layer's intermediate channels removed
  int64_t multiple = 8;      // the kept width is rounded down to a multiple of this (at least one multiple)
  CalibrationOptions calibration;
  int threads = 0;
};

struct NeuronPruneReport {
  int64_t width_before = 0, width_after = 0, layers = 0;
  int64_t calibration_tokens = 0;
  uint64_t params_before = 0, params_after = 0;
};

// `tokens` empty: weight norms only. The output folder must be absent or empty.
Result<NeuronPruneReport> prune_neurons(const std::filesystem::path& in, const std::filesystem::path& out,
                                        const std::vector<int32_t>& tokens, const NeuronPruneOptions& options);

}  // namespace brisk::calib
