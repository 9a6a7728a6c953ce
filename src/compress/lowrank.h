// Low-rank factorization of the decoder layers' linear layers (issue 22, `brisk lowrank`): each
// W [out, in] becomes output_factor [out, r] · input_factor [r, in], run as two products (a
// factored ops/linear.h Linear). The factors come from the SVD of W T, truncated, times T^-1:
//  - svd: T = I (Eckart-Young: the best rank-r W in the Frobenius norm, blind to the inputs);
//  - asvd (Yuan et al. 2023, "ASVD"): T = diag(mean |x_j|^alpha), input channels that carry
//    large activations weigh more;
//  - svd-llm (Wang et al. 2024, "SVD-LLM"): T = L, the Cholesky factor of X^T X (whitening), so
//    the discarded singular values are exactly the output error ||(W - W_r) X^T||_F.
// The singular values' squares split between the factors as their square roots (both factors of
// similar scale). Ranks: one fraction of each matrix's full rank (--rank-ratio), or one retained
// fraction of each matrix's spectrum energy chosen so that a global parameter budget is met
// (--compression); a matrix whose factors would not be smaller than it stays whole.
// Embeddings and the output head stay. Calibration statistics come from the unmodified model.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "compress/calibration.h"
#include "core/thread_pool.h"

namespace brisk::calib {

enum class LowRankMethod { Svd, Asvd, SvdLlm };
const char* low_rank_method_name(LowRankMethod m);
Result<LowRankMethod> parse_low_rank_method(const std::string& name);  // "svd", "asvd", "svd-llm"
bool needs_calibration(LowRankMethod m);

struct LowRankOptions {
  LowRankMethod method = LowRankMethod::SvdLlm;
  double rank_ratio = 0;   // > 0: each matrix keeps this fraction of min(out, in) components
  double compression = 0;  // > 0: this fraction of the matrices' parameters removed (ranks from the spectra)
  double asvd_alpha = 0.5;
  double damp = 1e-3;      // svd-llm: this times the mean diagonal of X^T X added before its Cholesky factor
  CalibrationOptions calibration;
  int threads = 0;
};
// Exactly one of rank_ratio (in (0, 1]) and compression (in (0, 1)); alpha in (0, 1]; damp >= 0.
Status check_low_rank_options(const LowRankOptions& options);

// W ≈ left[:, :r] · right[:r, :] for any r <= k = min(out, in), components in decreasing order of
// sigma2 (the squared singular values of W T).
struct Decomposition {
  int64_t out = 0, in = 0, k = 0;
  std::vector<double> sigma2;  // [k]
  std::vector<float> left;     // [out, k]
  std::vector<float> right;    // [k, in]
};

// The input transform T of a method for one matrix: none (svd), the per-channel scales (asvd) or
// the whitening factor (svd-llm), from the matrix's calibration statistics.
struct InputTransform {
  std::vector<double> scales;  // asvd: [in]
  std::vector<double> lower;   // svd-llm: [in, in], lower triangular
};
Result<InputTransform> input_transform(LowRankMethod method, const InputStats* input, int64_t in,
                                       const LowRankOptions& options, const std::string& name);
// Its products and the eigensolver's updates run on `pool` when given.
Decomposition decompose(const float* w, int64_t out, int64_t in, const InputTransform& t, ThreadPool* pool = nullptr);

struct FactoredMatrix {
  std::string name;            // the matrix's tensor name
  int64_t out = 0, in = 0;
  int64_t rank = 0;            // 0: kept whole
  double retained = 1;         // fraction of sum sigma2 kept
  std::vector<float> output_factor, input_factor;  // [out, rank], [rank, in]
  int64_t params() const { return rank ? rank * (out + in) : out * in; }
};

struct LowRankModel {
  std::vector<FactoredMatrix> matrices;  // every decoder linear layer, factored or whole
  int64_t params_before = 0, params_after = 0;  // of these matrices
  int64_t calibration_tokens = 0;
};

// The leading `rank` (<= the available) components as factors: of a decomposition, or of wider
// factors (a matrix's truncations share their components).
FactoredMatrix leading_factors(const Decomposition& d, int64_t rank, const std::string& name);
FactoredMatrix leading_factors(const FactoredMatrix& f, int64_t rank);

// The ranks (0: whole) that options ask for, given each matrix's decomposition.
Result<std::vector<int64_t>> choose_ranks(const std::vector<Decomposition>& d, const LowRankOptions& options);

// Loads the model, calibrates layer by layer when the method needs it, decomposes every decoder
// linear layer and keeps the chosen ranks. progress(matrices done, matrices).
Result<LowRankModel> factor_with_calibration(const std::filesystem::path& model_dir,
                                             const std::vector<int32_t>& calibration_tokens,
                                             const LowRankOptions& options,
                                             const std::function<void(int64_t, int64_t)>& progress = {});

// The factored model as a Hugging Face folder: config.json with "brisk_low_rank" {"method",
// "ranks"}, factored layers as "<module>.0.weight" / "<module>.1.weight" (+ "<module>.1.bias"),
// everything else as stored, all in the source's dtype (docs/FORMAT.md).
Status write_low_rank_model(const std::filesystem::path& in, const std::filesystem::path& out,
                            const LowRankModel& model, LowRankMethod method);

}  // namespace brisk::calib
