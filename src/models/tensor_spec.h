// What each checkpoint tensor of an architecture is: its name and shape as stored, how it is
// loaded, and its role in the network (layer, role, weight or bias, the axis a tensor-parallel
// split cuts). Every pass that rewrites weights (quantize, calibrate, GGUF mapping, synth,
// counting) reads the roles, never the names.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "ops/linear.h"

namespace brisk {

// How a checkpoint tensor maps onto a weight slot.
enum class TensorKind {
  Matrix,            // [out, in] used in place by matmul
  Embedding,         // [vocab, d] used in place, read one row per token
  TransposedMatrix,  // stored [in, out] (GPT-2's Conv1D); transposed once at load
  Vector,            // norm weights and biases: converted to fp32 at load (tiny)
};
enum class Presence { Required, Optional };

// What a tensor does. Fused projections have their own roles (AttnQkv: rows [q | k | v];
// MlpGateUp: rows [gate | up]) so passes that need the parts know where they are.
enum class Role : uint8_t {
  TokenEmbed,      // [vocab, d]
  PositionEmbed,   // [positions, d] (learned positions)
  TokenTypeEmbed,  // [types, d] (BERT segments)
  EmbedNorm,       // norm applied to the summed embeddings (BERT)
  AttnNorm,        // norm before attention (pre-norm) or after it (post-norm encoders)
  AttnQ,
  AttnK,
  AttnV,
  AttnQkv,
  AttnQNorm,      // per-head norm of the queries (Gemma-3)
  AttnKNorm,
  AttnO,
  AttnPostNorm,   // norm of the attention output before the residual add (Gemma-2/3)
  MlpNorm,
  MlpGate,
  MlpUp,          // the MLP's input projection (the only one when there is no gate)
  MlpGateUp,
  MlpDown,
  MlpPostNorm,
  FinalNorm,
  Head,           // hidden -> vocabulary logits
  Pooler,         // BERT's [CLS] dense + tanh
  Classifier,     // sequence classification head
};
enum class Part : uint8_t { Weight, Bias };

// A linear layer stored as two factors (brisk lowrank): "<module>.0.weight" [rank, in] and
// "<module>.1.weight" [out, rank] (+ "<module>.1.bias"), as a torch.nn.Sequential of two
// nn.Linear would store it. Whole: the usual single matrix.
enum class Factor : uint8_t { Whole, Input, Output };

// The factored linear layers of a model (config.json's "brisk_low_rank"): module -> rank.
using LowRankRanks = std::map<std::string, int64_t>;

// The module that holds factor f (Input or Output) of factored module `module`: "<module>.0" /
// "<module>.1". Declaring, checking and writing factored layers all name them through this.
std::string factor_module(const std::string& module, Factor f);

// The axis a Megatron-style tensor-parallel split cuts: Columns splits the output features
// (q/k/v, gate/up: each rank computes its heads or its slice of the MLP), Rows the input
// features (o, down: partial sums, then an all-reduce). Norms are replicated; the token
// embedding and the head split along the vocabulary (models/tensor_parallel.h).
enum class SplitAxis : uint8_t { None, Columns, Rows };

SplitAxis split_axis(Role role, Part part);
// The linear layers of a block that read one input (q/k/v; gate/up) run as one fused product and
// so share a weight format; a per-layer recipe (brisk optimize) chooses one format per group.
// None: not a decoder's linear layer (embeddings, norms, pooler, classifier).
enum class LinearGroup : uint8_t { None, AttnIn, AttnOut, MlpIn, MlpOut, Head };
LinearGroup linear_group(Role role);
const char* linear_group_name(LinearGroup group);  // "attn_in", "attn_out", "mlp_in", "mlp_out", "head"

const char* role_name(Role role);
const char* role_gguf_name(Role role);  // llama.cpp's name: blk.N.<this>.weight
constexpr int64_t kNoLayer = -1;  // model-level tensors (embeddings, final norm, head)

struct TensorSpec {
  std::string name;            // Hugging Face name
  std::string module;          // its module ("model.layers.0.mlp.up_proj"), as quantization configs name it
  std::vector<int64_t> shape;  // as stored in the checkpoint
  TensorKind kind;
  Presence presence = Presence::Required;
  int64_t layer = kNoLayer;
  Role role = Role::TokenEmbed;
  Part part = Part::Weight;
  // Vectors: added to every element at load. Gemma's norms multiply by 1 + w and store w, so
  // their runtime weight is stored + 1 (in fp32, as transformers forms it); passes that write a
  // vector back subtract it again.
  float load_offset = 0.0f;
  Factor factor = Factor::Whole;  // which factor of a low-rank linear layer, if it is one

  bool is_matrix() const { return kind == TensorKind::Matrix || kind == TensorKind::TransposedMatrix; }
  SplitAxis split() const { return split_axis(role, part); }
};

// Each architecture lists its tensors once (GUIDE rule 2); loading, synth and export all walk it.
using TensorVisitor = std::function<void(const TensorSpec& spec, Tensor& slot)>;

enum class HasBias : bool { No, Yes };

// What a family's weights struct calls in its visit(): declares tensors named <prefix><name>
// with their layer and role, and hands each slot to the visitor. low_rank: the config's factored
// layers (their linear() declares the two factors instead).
class TensorDeclarer {
 public:
  TensorDeclarer(const TensorVisitor& visit, const LowRankRanks& low_rank, std::string prefix,
                 int64_t layer = kNoLayer)
      : visit_(visit), low_rank_(low_rank), prefix_(std::move(prefix)), layer_(layer) {}

  // "<name>.weight" [out, in] (stored [in, out] for TransposedMatrix) and, with a bias,
  // "<name>.bias" [out]. A factored layer: its two factors (see Factor), always [out, in]-style.
  void linear(const std::string& name, Role role, int64_t out, int64_t in, Linear& slot, HasBias bias,
              TensorKind kind = TensorKind::Matrix, Presence presence = Presence::Required) const;
  // "<name>" [n], converted to fp32 at load.
  void vector(const std::string& name, Role role, int64_t n, Tensor& slot, Part part = Part::Weight) const;
  // A norm's "<name>.weight" and, with a bias, "<name>.bias".
  void norm(const std::string& name, Role role, int64_t n, Tensor& weight, Tensor* bias = nullptr) const;
  // A norm that scales by 1 + weight (Gemma): "<name>.weight", its load_offset 1.
  void norm_plus_one(const std::string& name, Role role, int64_t n, Tensor& weight) const;
  // "<name>.weight" [rows, cols], read one row per id.
  void embedding(const std::string& name, Role role, int64_t rows, int64_t cols, Tensor& slot) const;

 private:
  void declare(const std::string& module, const std::string& suffix, Role role, Part part,
               std::vector<int64_t> shape, TensorKind kind, Presence presence, Tensor& slot,
               float load_offset = 0.0f, Factor factor = Factor::Whole) const;

  const TensorVisitor& visit_;
  const LowRankRanks& low_rank_;
  std::string prefix_;
  int64_t layer_;
};

}  // namespace brisk
