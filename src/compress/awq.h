// AWQ (Lin et al. 2023, "AWQ: Activation-aware Weight Quantization for LLM Compression and
// Acceleration"): before round-to-nearest, scale each input channel of a weight by
// s = mean|x|^alpha so the channels that carry large activations keep more precision, and divide
// the activations by s where they are produced (a norm or the previous linear layer, see
// ScaleGroup), which leaves the fp32 model unchanged.
//
// Choices made here:
//  - alpha is searched on a grid of `grid` values in [0, 1) per scale group (alpha = 0 is no
//    scaling); s is normalised by sqrt(max s * min s) as in the reference implementation.
//  - The objective is the consumers' squared output error on the calibration rows, computed
//    exactly from the captured X^T X as sum_r dw_r H dw_r^T, not on a row subsample, and with the
//    quantizer that is finally stored: each alpha's weights go through the clipping search below
//    (fp16 scales, integer zeros). Judged after RTN instead, larger alphas win whose advantage the
//    clipping then more than undoes (sotu-llama w4 asym: 7% of RTN's perplexity gap closed
//    instead of about half).
//  - Scales are always folded into the producer (no explicit input-scale tensor): the RMSNorm
//    weight for q/k/v and gate/up, the v_proj rows for o_proj (under grouped-query attention the
//    o_proj columns of heads sharing a v head share one scale; their mean|x| is averaged), the
//    up_proj rows for down_proj (silu(gate) * up is linear in up).
//  - Clipping search ("auto_clip"): per output row and group, the range is shrunk (both ends, then
//    each end of an asymmetric grid alone, grid_search.h) to minimise the row's output error.
//    Asymmetric grids: the whole row's, groups visited in order with the others held at their
//    current grids, so the cross-group terms of H count (clipping one end biases a group, and
//    biases add up across a row through the activations' means, which the group's own block of
//    H does not see). Symmetric grids (one absmax shrink, no bias): the group's own block only.
//    Measured on sotu-llama w4 g128 (whole sotu-test, 16k calibration tokens): cross terms took
//    asym from 9% to 44% of RTN's perplexity gap closed but sym from 60% down to 42%.
//    Every matrix is clipped, q_proj and k_proj too (the reference skips them; on sotu-llama
//    clipping them lowered perplexity in both symmetries).
//  - Statistics come from one pass of the fp32 model; all groups' scales are searched on the
//    original weights, then folded, then every matrix is quantized.
#pragma once

#include <map>
#include <string>

#include "compress/calib_grid.h"
#include "compress/calib_weights.h"
#include "compress/calibration.h"
#include "compress/grid_search.h"

namespace brisk::calib {

enum class ClipSearch { Off, On };

struct AwqOptions {
  int grid = 20;              // alphas 0, 1/grid, ..., (grid-1)/grid
  ClipSearch clip_search = ClipSearch::On;
  // Shrink levels, ranges down to (1 - max_shrink) of the full one. Measured on sotu-llama w4
  // (brisk CLI, whole sotu-test, RTN's gap closed): asym 0.5 -> 43%, 0.3 -> 62%; sym 0.5 -> 60%,
  // 0.3 -> 48% (an absmax grid gains more from clipping than min/max grids, whose ends move alone).
  int clip_steps = 20;
  float max_shrink_asym = 0.3f;
  float max_shrink_sym = 0.5f;
  GridSearchOptions clip(const QuantSpec& spec) const {
    return {clip_steps, spec.symmetry == Symmetry::Asymmetric ? max_shrink_asym : max_shrink_sym};
  }
};

struct AwqScales {
  std::vector<float> scales;  // [producer channels]
  float alpha = 0;
  double error = 0;           // consumers' output error with these scales
  double rtn_error = 0;       // ... without scales (alpha = 0; clipped unless ClipSearch::Off)
};

// Searches one group's scales with the consumers' current weights and their input statistics.
// `backend` computes the products (a CPU backend).
AwqScales awq_search_scales(Backend& backend, FloatWeights& weights, const ScaleGroup& group,
                            const InputStats& input, const QuantSpec& spec, const AwqOptions& options);

// The grids [rows, groups] for w [rows, cols] whose input has h = X^T X (fp32, [cols, cols]), each
// group's range shrunk to minimise that group's output error (see grid_search.h).
std::vector<GroupParams> awq_search_clip(Backend& backend, const float* w, int64_t rows, int64_t cols,
                                         const std::vector<float>& h, const QuantSpec& spec,
                                         const AwqOptions& options);

// w [rows, cols] (input h = X^T X) quantized as AWQ stores it: clipped grids, or RTN's without
// the clipping search.
UnpackedMatrix awq_quantize_matrix(Backend& backend, const float* w, int64_t rows, int64_t cols,
                                   const std::vector<float>& h, const QuantSpec& spec, const AwqOptions& options);

struct AwqResult {
  std::map<std::string, UnpackedMatrix> matrices;  // every calibrated matrix, quantized
  std::map<std::string, AwqScales> groups;          // by the group's first consumer
};

// The whole model: searches and folds every scale group into `weights`, then quantizes every
// matrix in `stats` (with clipping if enabled) and replaces it in `weights` by its dequantized
// values. Errors: a group size that does not divide a matrix, a matrix without statistics.
Result<AwqResult> awq_quantize(Backend& backend, FloatWeights& weights, const ModelConfig& config,
                               const CalibrationStats& stats, const QuantSpec& spec,
                               const AwqOptions& options = {});

// H of an input after the producer divided channel i by s[i]: h_ij / (s_i s_j), in fp32.
std::vector<float> scaled_hessian(const std::vector<double>& xtx, const std::vector<float>& s, int64_t k);

}  // namespace brisk::calib
