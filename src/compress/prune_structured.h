// Structured pruning (issue 22, Minitron-style width and depth pruning): whole units removed and
// the model written physically smaller, config.json's widths (the family's ShapeKeys) set to what
// is kept. The units:
//  - neurons: MLP intermediate channels (gate/up rows, down columns), scored by the mean
//    |activation| entering down over calibration text times the channel's down column norm (no
//    text: the up row norm times the down column norm);
//  - heads: key-value groups (a kv head with the query heads that read it, so grouped-query
//    attention keeps its shape): q rows, k / v rows, o columns, scored by the mean |attention
//    output| of the group's query heads (entering o) times their o columns' norm (no text: the
//    v rows' norm times the o columns' norm);
//  - layers: whole decoder layers, scored by block influence (ShortGPT): 1 - the mean cosine
//    between the residual stream entering and leaving the layer over calibration text (needs
//    text); the kept layers are renumbered in order;
//  - hidden: channels of the model width (the residual stream): embedding and head columns, norm
//    entries, the inputs of q/k/v and gate/up, the outputs of o and down, scored by the mean |norm
//    output| entering q and gate (up) summed over layers (Minitron's embedding-channel score; no
//    text: the channel's weight norms over every matrix it meets). The head dimension stays, so the
//    config states head_dim; norms then average over fewer channels, which recovery fine-tuning
//    absorbs.
// Each width role is cut along its tensor-parallel split axis (SplitAxis: outputs of gate/up/q/k/v,
// inputs of down/o), the same units for every role of a layer; every layer keeps the same count
// (the config has one width).
//
// Families must declare their ShapeKeys; width pruning of a fused q/k/v (GPT-2's c_attn) or
// gate/up matrix is refused, and hidden pruning where head_dim is derived from the width.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "compress/calibration.h"

namespace brisk::calib {

enum class StructuredUnit { Neurons, Heads, Layers, Hidden };
// "neurons", "heads", "layers", "hidden"
Result<StructuredUnit> parse_structured_unit(const std::string& name);
const char* structured_unit_name(StructuredUnit unit);
const char* structured_unit_counted(StructuredUnit unit);  // what its count measures: "MLP width", ...

struct StructuredPruneOptions {
  StructuredUnit unit = StructuredUnit::Neurons;
  double ratio = 0.25;   // fraction of the units removed (of each layer's, for neurons and heads)
  int64_t multiple = 8;  // neurons, hidden: the kept width rounded to a multiple of this (>= one)
  CalibrationOptions calibration;
  int threads = 0;
};

struct StructuredPruneReport {
  int64_t units_before = 0, units_after = 0;  // MLP width, kv heads, layers or model width
  int64_t layers = 0, calibration_tokens = 0;  // layers of the output
  std::vector<int64_t> removed_layers;         // layers: the input's indices removed
  std::vector<double> layer_scores;            // layers: each input layer's block influence
  uint64_t params_before = 0, params_after = 0;
};

// `tokens` empty: weight norms only (layers: an error). The output folder must be absent or empty.
Result<StructuredPruneReport> prune_structured(const std::filesystem::path& in, const std::filesystem::path& out,
                                               const std::vector<int32_t>& tokens, const StructuredPruneOptions& options);

}  // namespace brisk::calib
