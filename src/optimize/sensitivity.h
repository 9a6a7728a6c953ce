// brisk optimize's scoring pass (issue 27): how much the model's output moves when one group of
// linear layers (the matrices of a block that read one input -- models/tensor_spec.h
// LinearGroup) is stored in one candidate format while everything else stays as stored. The
// proxy is the mean KL divergence KL(p_base || p_candidate) of the next-token distributions over
// calibration tokens, in nats per token, computed once per group x candidate with the real
// quantized matrices on brisk's own kernels of the chosen device (a ForwardingBackend swaps them in
// by pointer; the candidates are made on the host from the stored values).
// Summed over groups it estimates ln(ppl_recipe / ppl_base), the quantity the solver trades
// against bytes or time (optimize/recipe_frontier.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compress/calib_pipeline.h"
#include "compress/calib_weights.h"
#include "compress/lowrank.h"
#include "compress/prune.h"
#include "compress/quantize.h"
#include "core/kv_dtype.h"
#include "models/model.h"
#include "models/tensor_spec.h"
#include "runtime/device.h"

namespace brisk::recipe {

// One choice for a group: a quantization spec, or keep (the stored dtype), optionally after
// pruning (compress/prune.h): Wanda's score on the base model's calibration inputs, unstructured
// or N:M within each output row, then RTN (zeros stay zero codes). Pruning pays where a kernel
// reads fewer bytes for the zeros: the CPU's sparse int8 layout (backends/cpu/sparse_q8.h).
// Rounding is RTN, or GPTQ (compress/gptq.h) with the base model's inputs of the matrix (one
// pass, not layer by layer), or AWQ (compress/awq.h) for a group whose input comes from a norm:
// its per-channel scales fold into that norm's weight (and bias), which therefore changes with the
// group, and the group's matrices are clipped and rounded as brisk quantize --method awq does.
// Either way the codes scored are the codes written. Or low-rank
// (compress/lowrank.h): each matrix as two factors of the rank that removes the candidate's
// fraction of its parameters, from SVD-LLM's whitened decomposition on the base model's inputs,
// stored in the matrix's own dtype.
struct Candidate {
  std::string name;               // "keep", "w8", "w4-asym", "w4-gptq", "w8+s70", "lr40" ... (search_space_names)
  std::optional<QuantSpec> spec;  // nullopt: the stored dtype (keep, or low-rank factors)
  std::optional<calib::PruneOptions> prune;
  calib::Method method = calib::Method::Rtn;  // Rtn, Gptq or Awq
  std::optional<double> low_rank;             // the fraction of each matrix's parameters removed
};
// Whether the candidate leaves the matrices as stored.
bool keeps(const Candidate& candidate);
// The rank of a low-rank candidate's factors for a matrix [rows, cols]: the largest whose two
// factors hold at most (1 - low_rank) of its parameters (0: none does).
int64_t factor_rank(const Candidate& candidate, int64_t rows, int64_t cols);
// What --space searches: the groups' candidates, keep first, and the KV cache types tried on
// the answer (kv: one choice for the whole model, not a group's).
struct SearchSpace {
  std::vector<Candidate> candidates;
  std::vector<KvDtype> kv;  // narrowest first; empty: the cache stays as the runs default it
};
// `space`: a comma-separated list of techniques and candidate names: quant = w8, fp8, w4 (g128
// RTN, symmetric), w4-asym (with zero points), nf4, w4-gptq, w4-awq; prune = w8 after 2:4, 50% and 70%
// Wanda pruning; lowrank = 20% and 40% of the parameters removed; kv = fp8, int8, bf16 caches
// ("quant,prune"; "w8,w4,nf4"; "quant,kv").
Result<SearchSpace> search_space(const std::string& space);
// Each technique with its candidates' names: "quant (w8, fp8, ...), prune (w8+2:4, ...), kv (...)".
std::string search_space_names();

// Whether the candidate needs the matrix's calibration inputs (pruning, GPTQ, AWQ, low-rank): such candidates
// are offered for the layers' matrices only, not the head.
bool reads_inputs(const Candidate& candidate);

// Prunes w [rows, cols] as the candidate says (nothing when it does not prune): Wanda with
// `input`, magnitude without (timing copies: without inputs pruning is by magnitude and rounding
// RTN, since the kernels' time depends on the density and the format alone).
Status apply_pruning(const Candidate& candidate, std::vector<float>& w, int64_t rows, int64_t cols,
                     const calib::InputStats* input, const std::string& name);
// The candidate's form of one matrix w [rows, cols] (decoded to fp32): pruned, then quantized.
// Without `input` (the timing copies) calibrated methods round RTN, which stores the same format.
// AWQ's codes depend on the whole group's scales (measure_sensitivity makes them): refused with
// `input`.
Result<QuantizedMatrix> candidate_matrix(const Candidate& candidate, std::vector<float> w, int64_t rows, int64_t cols,
                                         const calib::InputStats* input, const std::string& name, ThreadPool* pool = nullptr);

struct MatrixShape {
  std::string tensor, module;  // "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.up_proj"
  int64_t rows = 0, cols = 0;  // [out, in]
  DType stored = DType::BF16;
};

// The matrices of one layer's group (or the untied head), which take one format together.
struct SearchGroup {
  int64_t layer = kNoLayer;
  LinearGroup kind = LinearGroup::None;
  std::vector<MatrixShape> matrices;
  // The norm that produces the group's input, where AWQ's scales fold (q/k/v and gate/up of a
  // pre-norm block); nullopt for groups whose input comes from another group's matrix.
  std::optional<calib::ScaleGroup> norm_fold;
  int64_t params() const;
  std::string label() const;  // "3.mlp_in", "head"
};

// Whether the candidate can hold every matrix of the group (a 4-bit group of 128 must divide a row;
// AWQ needs a norm to fold into).
bool holds(const SearchGroup& group, const Candidate& candidate);

// The groups of a loaded decoder, from the roles (q/k/v, o, gate/up, down per layer; an untied
// head), each matrix's slot by weight name into `slots` when given. Encoders, low-rank factored
// and already quantized models are refused by name.
Result<std::vector<SearchGroup>> search_groups(Model& model, std::map<std::string, Tensor>* slots = nullptr);

struct SensitivityOptions {
  int64_t window = 256;  // tokens per forward (positions 0..window-1)
  int64_t tokens = 512;  // calibration tokens scored (whole windows spread over the text)
};

struct Sensitivity {
  std::vector<SearchGroup> groups;
  // [group][candidate]: mean KL in nats per token, and the bytes the group's matrices take in a
  // model folder (as brisk quantize writes them); nullopt where the candidate cannot hold the group.
  std::vector<std::vector<std::optional<double>>> kl;
  std::vector<std::vector<std::optional<uint64_t>>> bytes;
  // The base model's per-channel input statistics by weight name (captured when a candidate reads them).
  std::map<std::string, std::shared_ptr<calib::InputStats>> inputs;
  // The codes of calibrated candidates (GPTQ), by weight name and candidate name: written as scored.
  std::map<std::string, std::map<std::string, QuantizedMatrix>> calibrated;
  // The vectors a calibrated candidate changed (AWQ's folded norm weights and biases, as the model
  // computes with them), by tensor name and candidate name: written with its codes.
  std::map<std::string, std::map<std::string, std::vector<float>>> folded;
  // Low-rank candidates' factors by weight name, at the largest rank any of them takes (the
  // others' are its leading components: factors_for): written as scored. fp32, so 0.8 of the
  // searched parameters at 4 bytes each with lr20 in the space.
  std::map<std::string, calib::FactoredMatrix> factors;
  int64_t tokens = 0;
  double seconds = 0;
};

// The factors that low-rank `candidate` scored for weight `tensor` (its leading components).
calib::FactoredMatrix factors_for(const Sensitivity& sens, const std::string& tensor, const Candidate& candidate);

// Scores on `where` (device and CPU threads; the host work -- making candidates, the
// log-softmax and KL over the vocabulary -- runs on where.threads CPU threads).
// progress(done, total) after each group x candidate.
Result<Sensitivity> measure_sensitivity(const std::filesystem::path& model, const std::vector<int32_t>& tokens,
                                        const std::vector<Candidate>& candidates, const SensitivityOptions& options,
                                        const BackendOptions& where,
                                        const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace brisk::recipe
