#include "compress/calib_weights.h"

#include <algorithm>

namespace brisk::calib {

FloatWeights FloatWeights::copy_from(Model& model) {
  FloatWeights out;
  model.visit_tensors([&](const TensorSpec& spec, Tensor& slot) {
    if (slot.empty() || spec.kind == TensorKind::Embedding) return;
    // Indexing by element assumes row-major storage (not a backend layout such as Bf16Pairs).
    BRISK_CHECK(slot.block_order == BlockOrder::RowMajor,
                "FloatWeights: '" + spec.name + "' is not stored row-major (load the model without --bf16-fast)");
    Entry& e = out.tensors_[spec.name];
    e.shape = slot.shape;
    e.data.resize(size_t(slot.numel()));
    for (size_t i = 0; i < e.data.size(); ++i) e.data[i] = load_as_f32(slot.data, slot.dtype, i);
  });
  return out;
}

std::vector<std::string> FloatWeights::names() const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : tensors_) out.push_back(name);
  return out;
}

std::vector<float>& FloatWeights::at(const std::string& name) {
  auto it = tensors_.find(name);
  BRISK_CHECK(it != tensors_.end(), "FloatWeights: no tensor '" + name + "'");
  return it->second.data;
}

const std::vector<int64_t>& FloatWeights::shape(const std::string& name) const {
  auto it = tensors_.find(name);
  BRISK_CHECK(it != tensors_.end(), "FloatWeights: no tensor '" + name + "'");
  return it->second.shape;
}

void FloatWeights::bind_to(Model& model) {
  model.visit_tensors([&](const TensorSpec& spec, Tensor& slot) {
    auto it = tensors_.find(spec.name);
    if (it == tensors_.end() || slot.empty()) return;
    slot = Tensor{it->second.data.data(), DType::F32, it->second.shape};
  });
}

int64_t ScaleGroup::channels(int64_t k) const {
  if (channel_of.empty()) return k;
  return *std::max_element(channel_of.begin(), channel_of.end()) + 1;
}

std::vector<ScaleGroup> scale_groups(const ModelConfig& c, Folds folds) {
  using P = ScaleGroup::Producer;
  const bool all = folds == Folds::All;
  std::vector<ScaleGroup> groups;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    if (c.arch == Architecture::GPT2) {
      const std::string p = "transformer.h." + std::to_string(l) + ".";
      groups.push_back({{p + "attn.c_attn.weight"}, p + "ln_1.weight", p + "ln_1.bias", P::Norm, 0, {}});
      if (all)
        groups.push_back({{p + "attn.c_proj.weight"}, p + "attn.c_attn.weight", p + "attn.c_attn.bias",
                          P::Linear, 2 * c.hidden_size, {}});
      groups.push_back({{p + "mlp.c_fc.weight"}, p + "ln_2.weight", p + "ln_2.bias", P::Norm, 0, {}});
      continue;
    }
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string a = p + "self_attn.", m = p + "mlp.";
    groups.push_back({{a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"},
                      p + "input_layernorm.weight", "", P::Norm, 0, {}});
    if (all) {
      // o_proj column (head h, dim i) reads v head h / (heads per kv head), dim i.
      ScaleGroup o{{a + "o_proj.weight"}, a + "v_proj.weight", c.qkv_bias ? a + "v_proj.bias" : "",
                   P::Linear, 0, {}};
      const int64_t per_kv = c.n_heads / c.n_kv_heads;
      if (per_kv > 1)
        for (int64_t h = 0; h < c.n_heads; ++h)
          for (int64_t i = 0; i < c.head_dim; ++i) o.channel_of.push_back((h / per_kv) * c.head_dim + i);
      groups.push_back(std::move(o));
    }
    groups.push_back({{m + "gate_proj.weight", m + "up_proj.weight"}, p + "post_attention_layernorm.weight",
                      "", P::Norm, 0, {}});
    if (all)
      groups.push_back({{m + "down_proj.weight"}, m + "up_proj.weight", c.mlp_bias ? m + "up_proj.bias" : "",
                        P::Linear, 0, {}});
  }
  return groups;
}

std::vector<float> expand_scales(const ScaleGroup& group, const std::vector<float>& s, int64_t k) {
  if (group.channel_of.empty()) return s;
  std::vector<float> full(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) full[size_t(i)] = s[size_t(group.channel_of[size_t(i)])];
  return full;
}

void fold_scales(FloatWeights& weights, const ScaleGroup& group, const std::vector<float>& s) {
  const int64_t k = weights.cols(group.consumers[0]);
  const std::vector<float> full = expand_scales(group, s, k);
  for (const std::string& name : group.consumers) {
    std::vector<float>& w = weights.at(name);
    const int64_t rows = weights.rows(name);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < k; ++i) w[size_t(r * k + i)] *= full[size_t(i)];
  }
  // The producer's output channel c (a norm element, or a row of a linear layer) divides by s[c].
  const int64_t width = group.producer == ScaleGroup::Producer::Linear ? weights.cols(group.fold_weight) : 1;
  std::vector<float>& fw = weights.at(group.fold_weight);
  for (size_t c = 0; c < s.size(); ++c) {
    const size_t row = size_t(group.row_offset) + c;
    for (int64_t i = 0; i < width; ++i) fw[row * size_t(width) + size_t(i)] /= s[c];
    if (!group.fold_bias.empty()) weights.at(group.fold_bias)[row] /= s[c];
  }
}

Result<std::map<std::string, QuantizedMatrix>> rtn_quantize(FloatWeights& weights,
                                                           const std::vector<std::string>& names,
                                                           const QuantSpec& spec) {
  for (const std::string& name : names) {
    if (!weights.has(name)) return make_error("rtn: no matrix '" + name + "' in the model");
    BRISK_TRY(check_spec(spec, weights.cols(name), "rtn: tensor '" + name + "'"));
  }
  std::map<std::string, QuantizedMatrix> out;
  for (const std::string& name : names) {
    std::vector<float>& w = weights.at(name);
    QuantizedMatrix q = quantize_rtn(w.data(), weights.rows(name), weights.cols(name), spec);
    std::copy(q.dequantized.begin(), q.dequantized.end(), w.begin());  // the model may point at w
    out[name] = std::move(q);
  }
  return out;
}

}  // namespace brisk::calib
