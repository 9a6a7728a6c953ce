// Unstructured and N:M pruning of the decoder layers' linear layers (issue 22): which weights become
// zero, chosen by
//  - magnitude: the smallest |w| of the matrix;
//  - random: a seeded uniform choice (the floor every method must beat);
//  - wanda (Sun et al. 2023, "A Simple and Effective Pruning Approach for LLMs"): the smallest
//    |w_ij| * ||X_j||_2 within each output row, X_j input channel j over the calibration tokens;
//  - sparsegpt (Frantar & Alistarh 2023): per block of 128 columns the smallest w^2 / U_jj^2 (the
//    Optimal Brain Surgeon cost of zeroing w; U the upper Cholesky factor of H^-1), the kept
//    weights updated to compensate (obs_sweep.h, the sweep GPTQ runs).
// With a pattern N:M every group of M consecutive inputs of a row keeps at most N weights (2:4 is
// what sparse tensor cores read), chosen by the same score. Embeddings and the output head stay.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compress/calib_weights.h"
#include "compress/calibration.h"
#include "formats/sparse_checkpoint.h"

namespace brisk::calib {

enum class PruneMethod { Magnitude, Random, Wanda, SparseGpt };
const char* prune_method_name(PruneMethod m);
Result<PruneMethod> parse_prune_method(const std::string& name);  // "magnitude", "random", "wanda", "sparsegpt"
bool needs_calibration(PruneMethod m);

// N:M -- at most `keep` non-zeros in each `group` consecutive inputs of a row. group 0: unstructured.
struct SparsityPattern {
  int64_t keep = 0, group = 0;
  bool structured() const { return group > 0; }
};
Result<SparsityPattern> parse_sparsity_pattern(const std::string& text);  // "2:4", "4:8"

// Where an unstructured sparsity is counted: in each matrix (wanda: each output row), or over all
// pruned matrices together (magnitude and random only: their scores compare across matrices).
enum class PruneScope { Layer, Global };

struct PruneOptions {
  PruneMethod method = PruneMethod::Magnitude;
  double sparsity = 0.5;        // unstructured: the fraction set to zero; ignored under a pattern
  SparsityPattern pattern;
  PruneScope scope = PruneScope::Layer;
  uint64_t seed = 0;            // random
  double damp = 0.01;           // sparsegpt: as GPTQ's
  int64_t block = 128;          // sparsegpt: columns per mask block and lazy batch
  CalibrationOptions calibration;
  int threads = 0;
};

// Checks the options against each other (a sparsity in [0, 1), a pattern with 0 < keep < group,
// global scope only for magnitude / random, no sparsity with a pattern is needed).
Status check_prune_options(const PruneOptions& options);

// Prunes w [rows, cols] in place. `input`: the matrix's calibration statistics (wanda, sparsegpt;
// null otherwise). `name` seeds random and names the matrix in errors.
Status prune_matrix(float* w, int64_t rows, int64_t cols, const InputStats* input, const PruneOptions& options,
                    const std::string& name);

struct PrunedModel {
  FloatWeights weights;                  // every matrix and vector, pruned matrices zeroed
  std::map<std::string, double> sparsity;  // per pruned matrix: the fraction of zeros
  int64_t calibration_tokens = 0;
};

// Loads the model, calibrates when the method needs it (layer by layer: layer l's inputs come
// from the model with layers < l already pruned, as SparseGPT and Wanda do) and prunes every
// decoder linear layer. progress(layers done, layers).
Result<PrunedModel> prune_with_calibration(const std::filesystem::path& model_dir,
                                           const std::vector<int32_t>& calibration_tokens, const PruneOptions& options,
                                           const std::function<void(int64_t, int64_t)>& progress = {});

// The pruned model as a Hugging Face folder: the source's tensors with the pruned matrices'
// values in their stored dtype and layout (zeros exact), the other files copied. With a sparse
// format the pruned matrices are stored compressed (formats/sparse_checkpoint.h) and config.json
// gets the quantization_config.sparsity_config that names them.
Status write_pruned_model(const std::filesystem::path& in, const std::filesystem::path& out, const PrunedModel& model,
                          std::optional<SparseFormat> sparse_storage = std::nullopt);

}  // namespace brisk::calib
