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

void FloatWeights::set(const std::string& name, std::vector<float> values, std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  BRISK_CHECK(n == int64_t(values.size()), "FloatWeights: '" + name + "' has " + std::to_string(values.size()) +
                                               " values for its shape");
  tensors_[name] = Entry{std::move(values), std::move(shape)};
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

const std::vector<float>& FloatWeights::at(const std::string& name) const {
  return const_cast<FloatWeights*>(this)->at(name);
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

namespace {

// One layer's tensors by role, weight and bias.
class LayerTensors {
 public:
  void add(const TensorSpec& spec) { (spec.part == Part::Weight ? weights_ : biases_)[spec.role] = spec.name; }
  bool has(Role role) const { return weights_.count(role) != 0; }
  const std::string& weight(Role role) const { return weights_.at(role); }
  std::string bias(Role role) const {
    auto it = biases_.find(role);
    return it == biases_.end() ? "" : it->second;
  }

 private:
  std::map<Role, std::string> weights_, biases_;
};

}  // namespace

Result<std::vector<ScaleGroup>> scale_groups(const ModelConfig& c, Folds folds) {
  using P = ScaleGroup::Producer;
  const bool all = folds == Folds::All;
  std::vector<LayerTensors> layers(size_t(c.n_layers));
  for (const TensorSpec& spec : c.arch->tensors(c))
    if (spec.layer != kNoLayer) layers[size_t(spec.layer)].add(spec);

  const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  std::vector<ScaleGroup> groups;
  for (const LayerTensors& t : layers) {
    // Post-norm encoders (BERT) and blocks without both input norms have no such fold sites.
    if (!t.has(Role::AttnNorm) || !t.has(Role::MlpNorm))
      return make_error("model_type '" + c.model_type +
                        "': scale folding (AWQ, SmoothQuant) needs pre-norm blocks (a norm before attention and one "
                        "before the MLP); use --method rtn or gptq");
    const bool fused_qkv = t.has(Role::AttnQkv);
    const std::vector<std::string> qkv = fused_qkv ? std::vector<std::string>{t.weight(Role::AttnQkv)}
                                                   : std::vector<std::string>{t.weight(Role::AttnQ), t.weight(Role::AttnK),
                                                                              t.weight(Role::AttnV)};
    groups.push_back({qkv, t.weight(Role::AttnNorm), t.bias(Role::AttnNorm), P::Norm, 0, {}});
    if (all) {
      // o's column (head h, dim i) reads v head h / (heads per kv head), dim i.
      const Role v = fused_qkv ? Role::AttnQkv : Role::AttnV;
      ScaleGroup o{{t.weight(Role::AttnO)}, t.weight(v), t.bias(v), P::Linear, fused_qkv ? q_dim + kv_dim : 0, {}};
      const int64_t per_kv = c.n_heads / c.n_kv_heads;
      if (per_kv > 1)
        for (int64_t h = 0; h < c.n_heads; ++h)
          for (int64_t i = 0; i < c.head_dim; ++i) o.channel_of.push_back((h / per_kv) * c.head_dim + i);
      groups.push_back(std::move(o));
    }
    const bool fused_gate_up = t.has(Role::MlpGateUp), gated = fused_gate_up || t.has(Role::MlpGate);
    std::vector<std::string> mlp_in = {t.weight(fused_gate_up ? Role::MlpGateUp : Role::MlpUp)};
    if (t.has(Role::MlpGate)) mlp_in.insert(mlp_in.begin(), t.weight(Role::MlpGate));
    groups.push_back({mlp_in, t.weight(Role::MlpNorm), t.bias(Role::MlpNorm), P::Norm, 0, {}});
    // down reads act(gate) * up, linear in up; an ungated MLP's activation blocks the fold.
    if (all && gated) {
      const Role up = fused_gate_up ? Role::MlpGateUp : Role::MlpUp;
      groups.push_back({{t.weight(Role::MlpDown)}, t.weight(up), t.bias(up), P::Linear,
                        fused_gate_up ? c.intermediate_size : 0, {}});
    }
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

Result<std::map<std::string, UnpackedMatrix>> rtn_quantize(FloatWeights& weights,
                                                          const std::vector<std::string>& names,
                                                          const QuantSpec& spec) {
  for (const std::string& name : names) {
    if (!weights.has(name)) return make_error("rtn: no matrix '" + name + "' in the model");
    BRISK_TRY(check_grid_spec(spec, weights.cols(name), "rtn: tensor '" + name + "'"));
  }
  std::map<std::string, UnpackedMatrix> out;
  for (const std::string& name : names) {
    std::vector<float>& w = weights.at(name);
    UnpackedMatrix q = quantize_rtn(w.data(), weights.rows(name), weights.cols(name), spec);
    std::copy(q.dequantized.begin(), q.dequantized.end(), w.begin());  // the model may point at w
    out[name] = std::move(q);
  }
  return out;
}

}  // namespace brisk::calib
