// AWQ (Lin et al. 2023, "AWQ: Activation-aware Weight Quantization for LLM Compression and
// Acceleration"): before round-to-nearest, scale each input channel of a weight by
// s = mean|x|^alpha so the channels that carry large activations keep more precision, and divide
// the activations by s where they are produced (a norm or the previous linear layer, see
// ScaleGroup), which leaves the fp32 model unchanged.
//
// Choices made here:
//  - alpha is searched on a grid of `grid` values in [0, 1) per scale group (alpha = 0 is plain
//    RTN, so the search never does worse than RTN on its objective); s is normalised by
//    sqrt(max s * min s) as in the reference implementation.
//  - The objective is the consumers' squared output error on the calibration rows, computed
//    exactly from the captured X^T X as sum_r dw_r H dw_r^T, not on a row subsample.
//  - Scales are always folded into the producer (no explicit input-scale tensor): the RMSNorm
//    weight for q/k/v and gate/up, the v_proj rows for o_proj (under grouped-query attention the
//    o_proj columns of heads sharing a v head share one scale; their mean|x| is averaged), the
//    up_proj rows for down_proj (silu(gate) * up is linear in up).
//  - Clipping search: per output row and group, the range is shrunk by 1 - max_shrink * t/clip_grid
//    to minimise that group's output error (cross-group terms ignored), skipped for q_proj/k_proj
//    (and GPT-2's fused c_attn) whose error is not the attention's, as in the reference.
//  - Statistics come from one pass of the fp32 model; all groups' scales are searched on the
//    original weights, then folded, then every matrix is quantized.
#pragma once

#include <map>
#include <string>

#include "compress/calib_grid.h"
#include "compress/calib_weights.h"
#include "compress/calibration.h"

namespace brisk::calib {

enum class ClipSearch { Off, On };

struct AwqOptions {
  int grid = 20;              // alphas 0, 1/grid, ..., (grid-1)/grid
  ClipSearch clip = ClipSearch::On;
  int clip_grid = 20;         // shrink candidates
  float max_shrink = 0.5f;    // the smallest range tried is (1 - max_shrink) of the full one
};

struct AwqScales {
  std::vector<float> scales;  // [producer channels]
  float alpha = 0;
  double error = 0;           // consumers' output error with these scales
  double rtn_error = 0;       // ... without scales (alpha = 0)
};

// Searches one group's scales with the consumers' current weights and their input statistics.
// `backend` computes the products (a CPU backend).
AwqScales awq_search_scales(Backend& backend, FloatWeights& weights, const ScaleGroup& group,
                            const InputStats& input, const QuantSpec& spec, const AwqOptions& options);

// Per (row, group) range-shrink factors [rows, groups] for w [rows, cols] whose input has
// h = X^T X (fp32, [cols, cols]).
std::vector<float> awq_search_clip(Backend& backend, const float* w, int64_t rows, int64_t cols,
                                   const std::vector<float>& h, const QuantSpec& spec,
                                   const AwqOptions& options);

struct AwqResult {
  std::map<std::string, QuantizedMatrix> matrices;  // every calibrated matrix, quantized
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
