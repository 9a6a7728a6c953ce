#include "export/onnx_graph.h"

#include <cmath>
#include <limits>

#include "core/quant_blocks.h"
#include "models/architecture.h"

namespace brisk::onnx_export {

using onnx::Attribute;
using onnx::ElementType;

RoleWeights::RoleWeights(const ModelConfig& c, const WeightStore& store) {
  for (const TensorSpec& spec : c.arch->tensors(c)) {
    const StoredTensor* s = store.find(spec.name);
    if (!s) continue;
    const Tensor* t = &s->tensor;
    if (spec.kind == TensorKind::TransposedMatrix && !is_block_dtype(t->dtype) && t->rank() == 2) {
      const int64_t rows = t->dim(0), cols = t->dim(1);  // stored [in, out]
      std::vector<float>& out = transposed_.emplace_back(transposed(decode_tensor(*t), rows, cols));
      t = &transposed_tensors_.emplace_back(Tensor{out.data(), DType::F32, {cols, rows}});
    }
    stored_[{spec.layer, spec.role, spec.part}] = {spec.name, t};
  }
}

const Tensor& RoleWeights::tensor(int64_t layer, Role role, Part part) const {
  return *stored_.at({layer, role, part}).tensor;
}

const std::string& RoleWeights::name(int64_t layer, Role role, Part part) const {
  return stored_.at({layer, role, part}).name;
}

Status require_roles(const ModelConfig& c, const RoleWeights& w, const std::vector<Role>& model_roles,
                     const std::vector<Role>& layer_roles) {
  for (Role role : model_roles)
    if (!w.has(kNoLayer, role))
      return make_error("ONNX export: '" + c.model_type + "' has no " + role_name(role) + " weight");
  for (int64_t l = 0; l < c.n_layers; ++l)
    for (Role role : layer_roles)
      if (!w.has(l, role))
        return make_error("ONNX export: layer " + std::to_string(l) + " of '" + c.model_type + "' has no separate " +
                          role_name(role) + " weight (fused projections are not supported yet)");
  return ok_status();
}

std::string weight_name(int64_t layer, Role role, Part part) {
  return "w" + std::to_string(layer) + "_" + role_name(role) + (part == Part::Bias ? "_bias" : "");
}

GraphParts::GraphParts(const ModelConfig& c, const RoleWeights& w, onnx::GraphBuilder& g, OnnxMatrixWriter& matrices)
    : c_(c), w_(w), g_(g), matrices_(matrices) {}

Status GraphParts::check_matrices(const std::vector<Role>& model_roles, const std::vector<Role>& layer_roles) const {
  for (int64_t l = 0; l < c_.n_layers; ++l)
    for (Role role : layer_roles) BRISK_TRY(matrices_.form_of(w_.tensor(l, role), w_.name(l, role)));
  for (Role role : model_roles)
    if (w_.has(kNoLayer, role)) BRISK_TRY(matrices_.form_of(w_.tensor(kNoLayer, role), w_.name(kNoLayer, role)));
  return ok_status();
}

std::string GraphParts::int64s(const std::vector<int64_t>& values) {
  auto [it, added] = int64_constants_.try_emplace(values, "");
  if (added) {
    std::string name = "i64";
    for (int64_t v : values) name += "_" + (v < 0 ? "m" + std::to_string(-v) : std::to_string(v));
    g_.add_int64s(name, {int64_t(values.size())}, values);
    it->second = name;
  }
  return it->second;
}

std::string GraphParts::int64_scalar(int64_t value) {
  auto [it, added] = int64_scalars_.try_emplace(value, "");
  if (added) {
    it->second = "i64_scalar_" + std::to_string(int64_scalars_.size() - 1);
    g_.add_int64s(it->second, {}, {value});
  }
  return it->second;
}

std::string GraphParts::float_scalar(float value) {
  auto [it, added] = float_scalars_.try_emplace(value, "");
  if (added) {
    it->second = "f32_scalar_" + std::to_string(float_scalars_.size() - 1);
    g_.add_floats(it->second, {}, {value});
  }
  return it->second;
}

std::string GraphParts::vector(int64_t layer, Role role, Part part) {
  const std::string name = weight_name(layer, role, part);
  g_.add_floats(name, w_.tensor(layer, role, part).shape, decode_tensor(w_.tensor(layer, role, part)));
  return name;
}

std::string GraphParts::linear(const std::string& x, int64_t layer, Role role) {
  std::string y = matrices_.multiply(x, w_.tensor(layer, role), w_.name(layer, role), weight_name(layer, role));
  if (w_.has(layer, role, Part::Bias)) y = g_.op("Add", {y, vector(layer, role, Part::Bias)});
  return y;
}

std::string GraphParts::rms_norm(const std::string& x, int64_t layer, Role role) {
  const std::string mean =
      g_.op("ReduceMean", {g_.op("Mul", {x, x})}, {{"axes", std::vector<int64_t>{-1}}, {"keepdims", int64_t(1)}});
  const std::string inv = g_.op("Reciprocal", {g_.op("Sqrt", {g_.op("Add", {mean, float_scalar(float(c_.norm_eps))})})});
  return g_.op("Mul", {vector(layer, role), g_.op("Mul", {x, inv})});
}

std::string GraphParts::layer_norm(const std::string& x, int64_t layer, Role role) {
  return g_.op("LayerNormalization", {x, vector(layer, role), vector(layer, role, Part::Bias)},
               {{"axis", int64_t(-1)}, {"epsilon", float(c_.norm_eps)}});
}

std::string GraphParts::gelu_tanh(const std::string& x) {
  const std::string cube = g_.op("Mul", {g_.op("Mul", {x, x}), x});
  const std::string inner = g_.op("Mul", {g_.op("Add", {x, g_.op("Mul", {cube, float_scalar(0.044715f)})}),
                                          float_scalar(float(std::sqrt(2.0 / M_PI)))});
  const std::string one_plus = g_.op("Add", {g_.op("Tanh", {inner}), float_scalar(1.0f)});
  return g_.op("Mul", {g_.op("Mul", {x, float_scalar(0.5f)}), one_plus});
}

std::string GraphParts::gelu_erf(const std::string& x) {
  const std::string erf = g_.op("Erf", {g_.op("Mul", {x, float_scalar(float(1.0 / std::sqrt(2.0)))})});
  return g_.op("Mul", {g_.op("Mul", {x, float_scalar(0.5f)}), g_.op("Add", {erf, float_scalar(1.0f)})});
}

std::string GraphParts::heads_first(const std::string& x, int64_t heads) {
  return g_.op("Transpose", {g_.op("Reshape", {x, int64s({0, 0, heads, c_.head_dim})})},
               {{"perm", std::vector<int64_t>{0, 2, 1, 3}}});
}

std::string GraphParts::attention(const std::string& q, const std::string& keys, const std::string& values,
                                  const std::string& allowed) {
  const int64_t H = c_.n_heads, KV = c_.n_kv_heads, Dh = c_.head_dim;
  // Grouped queries: [b, kv, group, seq, d] against each kv head's keys [b, kv, 1, d, total].
  const std::string q5 = g_.op("Reshape", {q, int64s({0, KV, H / KV, -1, Dh})});
  const std::string k5 =
      g_.op("Transpose", {g_.op("Unsqueeze", {keys, int64s({2})})}, {{"perm", std::vector<int64_t>{0, 1, 2, 4, 3}}});
  const std::string scores = g_.op("Mul", {g_.op("MatMul", {q5, k5}), float_scalar(1.0f / std::sqrt(float(Dh)))});
  const std::string masked = g_.op("Where", {allowed, scores, float_scalar(std::numeric_limits<float>::lowest())});
  const std::string probs = g_.op("Softmax", {masked}, {{"axis", int64_t(-1)}});
  const std::string mixed = g_.op("MatMul", {probs, g_.op("Unsqueeze", {values, int64s({2})})});  // [b, kv, g, s, d]
  const std::string heads = g_.op("Reshape", {mixed, int64s({0, H, -1, Dh})});
  return g_.op("Reshape", {g_.op("Transpose", {heads}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}}),
                           int64s({0, 0, H * Dh})});
}

}  // namespace brisk::onnx_export
