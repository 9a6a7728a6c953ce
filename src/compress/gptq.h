// GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative
// Pre-trained Transformers"): quantizes a weight matrix one input column at a time and spreads
// each column's rounding error over the columns not yet quantized, weighted by the inverse
// Hessian of the layer's squared output error, H = 2 X^T X (X: calibration inputs).
//
// Per matrix W [out, in]:
//  - dead inputs (H_ii = 0: the channel never fired) get H_ii = 1 and W[:, i] = 0;
//  - dampening: H += damp * mean(diag H) * I (retried with 10x more if H is still not positive
//    definite);
//  - U = upper Cholesky factor of H^-1; columns are quantized in blocks of `block`, with the
//    in-block updates immediate and the rest applied once per block (the paper's lazy batching);
//  - groups: the grid of a group is fixed when its first column is reached, from the (already
//    error-updated) weights as in the paper, but with its range searched (grid_search.h) rather
//    than min/max: the shrink minimising sum_j e_j^2 / U_jj^2 over the group's columns, what each
//    column's rounding error costs once the later columns have compensated for it (the original
//    code's `mse` option weighs all columns alike; this weighting did better on sotu-llama).
//  - act-order: columns are visited by descending H_ii. Two ways to group them, see GroupOrder.
//  - zeros stay zeros: an exact 0 of the input (a pruned weight) is quantized to the code of 0,
//    so prune-then-quantize keeps the sparsity pattern (the error still spreads to the others).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "compress/calib_grid.h"
#include "compress/calib_weights.h"
#include "compress/calibration.h"
#include "compress/grid_search.h"

namespace brisk::calib {

enum class ActOrder { Off, On };

// How groups are formed under act-order (without act-order both are the same contiguous groups).
enum class GroupOrder {
  // Groups stay contiguous runs of input columns (column / group_size), and their grids are
  // fitted to the original weights before quantization starts ("static groups"). No group index:
  // the layout RTN kernels read. The default.
  Static,
  // Groups are consecutive runs in visiting order, fitted when reached; the result carries
  // group_index (g_idx) because a group's columns are scattered in the original order.
  Activation,
};

struct GptqOptions {
  double damp = 0.01;    // fraction of mean(diag H) added to the diagonal
  int64_t block = 128;   // columns per lazy-batch block
  ActOrder act_order = ActOrder::Off;
  GroupOrder group_order = GroupOrder::Static;
  GridSearchOptions grid;  // each group's range, searched when its grid is fixed
  int threads = 0;         // rows swept in parallel on this many threads (0: all cores)
};

// Quantizes w [rows, cols] given xtx = sum x^T x [cols, cols] (the Hessian up to a factor, which
// GPTQ is invariant to). Fails only if H stays indefinite after repeated dampening.
Result<UnpackedMatrix> gptq(const float* w, int64_t rows, int64_t cols, const std::vector<double>& xtx,
                            const QuantSpec& spec, const GptqOptions& options = {});

// Every matrix in `stats`: quantized with its input's Hessian and replaced in `weights` by its
// dequantized values. All Hessians come from one pass of the unquantized model; for the paper's
// sequential variant (later layers calibrated on earlier quantized ones) call this once per layer
// with stats captured after binding the previous layers' results (CalibrationOptions::select).
Result<std::map<std::string, UnpackedMatrix>> gptq_quantize(FloatWeights& weights, const CalibrationStats& stats,
                                                           const QuantSpec& spec, const GptqOptions& options = {});

}  // namespace brisk::calib
