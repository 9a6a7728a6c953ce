#include "export/onnx_encoder.h"

namespace brisk::onnx_export {

using onnx::ElementType;

Status build_encoder(GraphParts& p) {
  const ModelConfig& c = p.config();
  const RoleWeights& w = p.weights();
  onnx::GraphBuilder& g = p.graph();
  const std::vector<Role> matrices = {Role::AttnQ, Role::AttnK, Role::AttnV, Role::AttnO, Role::MlpUp, Role::MlpDown};
  std::vector<Role> layer_roles = matrices;
  layer_roles.insert(layer_roles.end(), {Role::AttnPostNorm, Role::MlpPostNorm});
  BRISK_TRY(require_roles(c, w, {Role::TokenEmbed, Role::PositionEmbed, Role::TokenTypeEmbed, Role::EmbedNorm},
                          layer_roles));
  BRISK_TRY(p.check_matrices({Role::Pooler, Role::Classifier}, matrices));
  const bool classifier = w.has(kNoLayer, Role::Classifier);
  if (classifier && !w.has(kNoLayer, Role::Pooler))
    return make_error("ONNX export: '" + c.model_type + "' has a classifier but no pooler weight");

  const std::vector<onnx::Dim> dims = {"batch_size", "sequence_length"};
  for (const char* input : {"input_ids", "attention_mask", "token_type_ids"}) g.add_input(input, ElementType::Int64, dims);
  if (classifier)
    g.add_output("logits", ElementType::Float, {"batch_size", w.tensor(kNoLayer, Role::Classifier).dim(0)});
  else
    g.add_output("last_hidden_state", ElementType::Float, {"batch_size", "sequence_length", c.hidden_size});

  // word[ids] + token_type[types] + position[0..seq-1], then LayerNorm (transformers' order).
  OnnxMatrixWriter& m = p.matrices();
  auto gather = [&](const std::string& table, Role role, const std::string& ids) {
    return g.op("Gather", {m.float_table(table, w.tensor(kNoLayer, role)), ids}, {{"axis", int64_t(0)}});
  };
  const std::string seq = g.op("Squeeze", {g.op("Shape", {"input_ids"}, {{"start", int64_t(1)}}), p.int64s({0})});
  const std::string positions = g.op("Range", {p.int64_scalar(0), seq, p.int64_scalar(1)});
  std::string x = g.op("Add", {gather("word_embeddings", Role::TokenEmbed, "input_ids"),
                               gather("token_type_embeddings", Role::TokenTypeEmbed, "token_type_ids")});
  x = g.op("Add", {x, gather("position_embeddings", Role::PositionEmbed, positions)});
  x = p.layer_norm(x, kNoLayer, Role::EmbedNorm);

  // Every query sees every key the mask keeps: allowed [batch, 1, 1, 1, seq].
  const std::string allowed = g.op("Unsqueeze", {g.op("Cast", {"attention_mask"}, {{"to", int64_t(ElementType::Bool)}}),
                                                 p.int64s({1, 2, 3})});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string q = p.heads_first(p.linear(x, l, Role::AttnQ), c.n_heads);
    const std::string k = p.heads_first(p.linear(x, l, Role::AttnK), c.n_kv_heads);
    const std::string v = p.heads_first(p.linear(x, l, Role::AttnV), c.n_kv_heads);
    const std::string attn = p.linear(p.attention(q, k, v, allowed), l, Role::AttnO);
    const std::string a = p.layer_norm(g.op("Add", {attn, x}), l, Role::AttnPostNorm);
    const std::string up = p.linear(a, l, Role::MlpUp);
    const std::string act = c.activation == Activation::GeluErf ? p.gelu_erf(up) : p.gelu_tanh(up);
    x = p.layer_norm(g.op("Add", {p.linear(act, l, Role::MlpDown), a}), l, Role::MlpPostNorm);
  }
  if (!classifier) {
    g.node("Identity", {x}, {"last_hidden_state"});
    return ok_status();
  }
  // The [CLS] row (position 0) of each sequence -> tanh(pooler) -> classifier.
  const std::string cls = g.op("Gather", {x, p.int64_scalar(0)}, {{"axis", int64_t(1)}});  // [batch, hidden]
  const std::string pooled = g.op("Tanh", {p.linear(cls, kNoLayer, Role::Pooler)});
  g.node("Identity", {p.linear(pooled, kNoLayer, Role::Classifier)}, {"logits"});
  return ok_status();
}

}  // namespace brisk::onnx_export
