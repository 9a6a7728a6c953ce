// The pieces every exported ONNX graph is built from: a checkpoint's tensors found by role (never
// by name), and the computations of transformers' modules as ONNX nodes -- linear layers, RMSNorm
// and LayerNorm, GELU, and attention over [batch, heads, seq, head_dim] operands with a boolean
// mask. The decoder graphs (export/onnx_export.cc) and the encoder graph (onnx_encoder.cc)
// assemble them.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "export/onnx_matrices.h"
#include "formats/onnx_writer.h"
#include "models/model.h"

namespace brisk::onnx_export {

// A checkpoint's tensors by (layer, role, part).
class RoleWeights {
 public:
  RoleWeights(const ModelConfig& c, const WeightStore& store);
  bool has(int64_t layer, Role role, Part part = Part::Weight) const {
    return stored_.count({layer, role, part}) != 0;
  }
  // A matrix as [out, in] (GPT-2's Conv1D matrices, stored [in, out] while in float, are
  // transposed here), or a vector as stored.
  const Tensor& tensor(int64_t layer, Role role, Part part = Part::Weight) const;
  // Its name in the checkpoint ("model.layers.0.self_attn.q_proj.weight").
  const std::string& name(int64_t layer, Role role, Part part = Part::Weight) const;

 private:
  struct Entry {
    std::string name;
    const Tensor* tensor;
  };
  std::map<std::tuple<int64_t, Role, Part>, Entry> stored_;
  std::deque<std::vector<float>> transposed_;  // the transposed copies' storage
  std::deque<Tensor> transposed_tensors_;
};

// Fails naming the first (layer, role) weight the graph needs and the checkpoint lacks.
Status require_roles(const ModelConfig& c, const RoleWeights& w, const std::vector<Role>& model_roles,
                     const std::vector<Role>& layer_roles);

class GraphParts {
 public:
  GraphParts(const ModelConfig& c, const RoleWeights& w, onnx::GraphBuilder& g, OnnxMatrixWriter& matrices);

  // Checks that every matrix of these roles (layers' and the model's) can take the export's form.
  Status check_matrices(const std::vector<Role>& model_roles, const std::vector<Role>& layer_roles) const;

  // A vector (a norm's weight, a bias) as a float initializer.
  std::string vector(int64_t layer, Role role, Part part = Part::Weight);
  // x . W^T (+ b when the checkpoint has one).
  std::string linear(const std::string& x, int64_t layer, Role role);
  // transformers' RMSNorm: x * rsqrt(mean(x^2) + eps) * w, in fp32.
  std::string rms_norm(const std::string& x, int64_t layer, Role role);
  // nn.LayerNorm over the last axis, with weight and bias.
  std::string layer_norm(const std::string& x, int64_t layer, Role role);
  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) -- GPT-2's gelu_new.
  std::string gelu_tanh(const std::string& x);
  // 0.5 x (1 + erf(x / sqrt(2))) -- BERT's gelu.
  std::string gelu_erf(const std::string& x);
  // [batch, seq, heads * head_dim] -> [batch, heads, seq, head_dim]
  std::string heads_first(const std::string& x, int64_t heads);
  // softmax(q k^T / sqrt(head_dim), masked where `allowed` is false) v, merged back to
  // [batch, seq, heads * head_dim]. q: [b, H, s, d]; keys, values: [b, KV, t, d] (KV divides H:
  // grouped queries through a 5-D MatMul that never copies a kv head); allowed: bool,
  // broadcastable to [b, KV, H / KV, s, t].
  std::string attention(const std::string& q, const std::string& keys, const std::string& values,
                        const std::string& allowed);
  // Constants, each added once: a 1-D int64 tensor (axes, shapes), an int64 scalar, a float scalar.
  std::string int64s(const std::vector<int64_t>& values);
  std::string int64_scalar(int64_t value);
  std::string float_scalar(float value);

  const ModelConfig& config() const { return c_; }
  const RoleWeights& weights() const { return w_; }
  onnx::GraphBuilder& graph() { return g_; }
  OnnxMatrixWriter& matrices() { return matrices_; }

 private:
  const ModelConfig& c_;
  const RoleWeights& w_;
  onnx::GraphBuilder& g_;
  OnnxMatrixWriter& matrices_;
  std::map<std::vector<int64_t>, std::string> int64_constants_;
  std::map<int64_t, std::string> int64_scalars_;
  std::map<float, std::string> float_scalars_;
};

std::string weight_name(int64_t layer, Role role, Part part = Part::Weight);

}  // namespace brisk::onnx_export
