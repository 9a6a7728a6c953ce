#include "models/tensor_spec.h"

#include "core/error.h"

namespace brisk {

SplitAxis split_axis(Role role, Part part) {
  switch (role) {
    case Role::AttnQ:
    case Role::AttnK:
    case Role::AttnV:
    case Role::AttnQkv:
    case Role::MlpGate:
    case Role::MlpUp:
    case Role::MlpGateUp:
    case Role::Head:
      return SplitAxis::Columns;  // biases split with their output features
    case Role::AttnO:
    case Role::MlpDown:
      // The bias is added once, after the all-reduce of the partial sums.
      return part == Part::Weight ? SplitAxis::Rows : SplitAxis::None;
    default:
      return SplitAxis::None;
  }
}

LinearGroup linear_group(Role role) {
  switch (role) {
    case Role::AttnQ:
    case Role::AttnK:
    case Role::AttnV:
    case Role::AttnQkv:
      return LinearGroup::AttnIn;
    case Role::AttnO:
      return LinearGroup::AttnOut;
    case Role::MlpGate:
    case Role::MlpUp:
    case Role::MlpGateUp:
      return LinearGroup::MlpIn;
    case Role::MlpDown:
      return LinearGroup::MlpOut;
    case Role::Head:
      return LinearGroup::Head;
    default:
      return LinearGroup::None;
  }
}

const char* linear_group_name(LinearGroup group) {
  switch (group) {
    case LinearGroup::AttnIn: return "attn_in";
    case LinearGroup::AttnOut: return "attn_out";
    case LinearGroup::MlpIn: return "mlp_in";
    case LinearGroup::MlpOut: return "mlp_out";
    case LinearGroup::Head: return "head";
    case LinearGroup::None: break;
  }
  return "none";
}

namespace {

// Each role's name in brisk's messages and in llama.cpp's GGUF files (its constants.py
// MODEL_TENSOR names), in the enum's order.
struct RoleNames {
  Role role;
  const char* name;
  const char* gguf;
};
constexpr RoleNames kRoleNames[] = {
    {Role::TokenEmbed, "token_embed", "token_embd"},
    {Role::PositionEmbed, "position_embed", "position_embd"},
    {Role::TokenTypeEmbed, "token_type_embed", "token_types"},
    {Role::EmbedNorm, "embed_norm", "token_embd_norm"},
    {Role::AttnNorm, "attn_norm", "attn_norm"},
    {Role::AttnQ, "attn_q", "attn_q"},
    {Role::AttnK, "attn_k", "attn_k"},
    {Role::AttnV, "attn_v", "attn_v"},
    {Role::AttnQkv, "attn_qkv", "attn_qkv"},
    {Role::AttnQNorm, "attn_q_norm", "attn_q_norm"},
    {Role::AttnKNorm, "attn_k_norm", "attn_k_norm"},
    {Role::AttnO, "attn_o", "attn_output"},
    {Role::AttnPostNorm, "attn_post_norm", "post_attention_norm"},
    {Role::MlpNorm, "mlp_norm", "ffn_norm"},
    {Role::MlpGate, "mlp_gate", "ffn_gate"},
    {Role::MlpUp, "mlp_up", "ffn_up"},
    {Role::MlpGateUp, "mlp_gate_up", "ffn_up"},  // llama.cpp stores Phi-3's fused [gate | up] as ffn_up
    {Role::MlpDown, "mlp_down", "ffn_down"},
    {Role::MlpPostNorm, "mlp_post_norm", "post_ffw_norm"},
    {Role::FinalNorm, "final_norm", "output_norm"},
    {Role::Head, "head", "output"},
    {Role::Pooler, "pooler", "cls"},
    {Role::Classifier, "classifier", "cls.output"},
};

const RoleNames& names_of(Role role) {
  const RoleNames& r = kRoleNames[size_t(role)];
  BRISK_CHECK(r.role == role, "kRoleNames out of the enum's order");
  return r;
}

}  // namespace

const char* role_name(Role role) { return names_of(role).name; }
const char* role_gguf_name(Role role) { return names_of(role).gguf; }

}  // namespace brisk

namespace brisk {

std::string factor_module(const std::string& module, Factor f) {
  BRISK_CHECK(f != Factor::Whole, "factor_module: a whole layer has no factor modules");
  return module + (f == Factor::Input ? ".0" : ".1");
}

void TensorDeclarer::declare(const std::string& module, const std::string& suffix, Role role, Part part,
                             std::vector<int64_t> shape, TensorKind kind, Presence presence, Tensor& slot,
                             float load_offset, Factor factor) const {
  TensorSpec spec{prefix_ + module + suffix, prefix_ + module, std::move(shape), kind, presence, layer_, role, part,
                  load_offset, factor};
  visit_(spec, slot);
}

void TensorDeclarer::linear(const std::string& name, Role role, int64_t out, int64_t in, Linear& slot,
                            HasBias bias, TensorKind kind, Presence presence) const {
  if (const auto it = low_rank_.find(prefix_ + name); it != low_rank_.end()) {
    const int64_t rank = it->second;
    const std::string first = factor_module(name, Factor::Input), second = factor_module(name, Factor::Output);
    declare(first, ".weight", role, Part::Weight, {rank, in}, TensorKind::Matrix, presence, slot.input_factor, 0.0f,
            Factor::Input);
    declare(second, ".weight", role, Part::Weight, {out, rank}, TensorKind::Matrix, presence, slot.weight, 0.0f,
            Factor::Output);
    if (bias == HasBias::Yes)
      declare(second, ".bias", role, Part::Bias, {out}, TensorKind::Vector, presence, slot.bias, 0.0f, Factor::Output);
    return;
  }
  const std::vector<int64_t> shape = kind == TensorKind::TransposedMatrix ? std::vector<int64_t>{in, out}
                                                                          : std::vector<int64_t>{out, in};
  declare(name, ".weight", role, Part::Weight, shape, kind, presence, slot.weight);
  if (bias == HasBias::Yes)
    declare(name, ".bias", role, Part::Bias, {out}, TensorKind::Vector, presence, slot.bias);
}

void TensorDeclarer::vector(const std::string& name, Role role, int64_t n, Tensor& slot, Part part) const {
  declare(name, "", role, part, {n}, TensorKind::Vector, Presence::Required, slot);
}

void TensorDeclarer::norm(const std::string& name, Role role, int64_t n, Tensor& weight, Tensor* bias) const {
  declare(name, ".weight", role, Part::Weight, {n}, TensorKind::Vector, Presence::Required, weight);
  if (bias) declare(name, ".bias", role, Part::Bias, {n}, TensorKind::Vector, Presence::Required, *bias);
}

void TensorDeclarer::norm_plus_one(const std::string& name, Role role, int64_t n, Tensor& weight) const {
  declare(name, ".weight", role, Part::Weight, {n}, TensorKind::Vector, Presence::Required, weight, 1.0f);
}

void TensorDeclarer::embedding(const std::string& name, Role role, int64_t rows, int64_t cols, Tensor& slot) const {
  declare(name, ".weight", role, Part::Weight, {rows, cols}, TensorKind::Embedding, Presence::Required, slot);
}

}  // namespace brisk
