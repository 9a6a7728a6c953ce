#include "train/decoder_trainer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "backends/cpu/matmul.h"
#include "backends/cpu/train_gemm.h"
#include "compress/fake_quantize.h"
#include "core/dtype.h"
#include "models/architecture.h"
#include "models/rope_tables.h"
#include "ops/reference.h"
#include "ops/reference_grad.h"
#include "train/head_losses.h"

namespace brisk::train {

namespace {

constexpr int kNone = -1;

// Parameter indices of one Linear slot (bias kNone when it has none).
struct LinearIds {
  int weight = kNone, bias = kNone;
};

// A norm's scale and (LayerNorm) shift.
struct NormIds {
  int weight = kNone, bias = kNone;
};

// q/k/v are three matrices (Llama) or one fused [q | k | v] matrix (GPT-2's c_attn); the MLP is
// SwiGLU (gate, up, down) or GELU (up = c_fc, down = c_proj).
struct LayerIds {
  NormIds attn_norm, mlp_norm;
  LinearIds q, k, v, qkv, o, gate, up, down;
};

// What one layer's backward pass needs from its forward, [rows, width] each (gate only for SwiGLU;
// act is the MLP's activation, up its input under GELU).
struct LayerTape {
  std::vector<float> x, n1, q, k, v, att, h, n2, gate, up, act;
  bool recorded() const { return !n1.empty(); }
  void keep_input_only() {  // everything but x freed (ActivationMemory::LayerInputs)
    for (std::vector<float>* v : {&n1, &q, &k, &v, &att, &h, &n2, &gate, &up, &act}) std::vector<float>().swap(*v);
  }
};

// The two block shapes the trainer knows, from the architecture's family.
enum class Block {
  Llama,  // RMSNorm, RoPE, separate q/k/v, SwiGLU
  Gpt2,   // LayerNorm with shift, learned positions, fused q/k/v, GELU (tanh)
};

// Column blocks of a row-major matrix: a pointer to [rows, width] and the width.
struct ColumnBlock {
  float* data;
  int64_t width;
};

// src [rows, sum of widths] -> each block its columns, in order.
void split_columns(const float* src, int64_t rows, std::initializer_list<ColumnBlock> blocks) {
  int64_t total = 0;
  for (const ColumnBlock& b : blocks) total += b.width;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = src + r * total;
    for (const ColumnBlock& b : blocks) {
      std::copy_n(row, b.width, b.data + r * b.width);
      row += b.width;
    }
  }
}
// The inverse: the blocks side by side into dst [rows, sum of widths].
void join_columns(std::initializer_list<ColumnBlock> blocks, int64_t rows, float* dst) {
  for (int64_t r = 0; r < rows; ++r)
    for (const ColumnBlock& b : blocks) {
      std::copy_n(b.data + r * b.width, b.width, dst);
      dst += b.width;
    }
}

// Whether a backward pass writes its input gradient or adds it to what is there (q/k/v and
// gate/up share their input).
enum class InputGrad { Write, Add };

}  // namespace

// The forward pass of `windows` windows: the tape of every layer, the last residual and the final
// norm's output.
struct DecoderTrainer::Pass {
  int64_t windows = 0, window = 0;
  std::vector<int32_t> inputs, targets, positions;
  std::vector<LayerTape> tape;
  std::vector<float> last, normed;
};

struct DecoderTrainer::Impl {
  ModelConfig config;
  ThreadPool pool;
  std::vector<TrainState::Parameter> params;
  std::vector<std::vector<float>> grads;
  Block block = Block::Llama;
  int embed = kNone, positions = kNone;  // positions: GPT-2's learned position table
  NormIds final_norm;
  LinearIds head;  // weight kNone: tied to the embeddings
  std::vector<LayerIds> layers;
  // --qat: per parameter its format and fake-quantized values (empty for those not quantized).
  std::vector<std::optional<QuantSpec>> fake_specs;
  std::vector<std::vector<float>> fake;
  // --keep-sparsity: per parameter the indices held at zero (empty for the others).
  std::vector<std::vector<int64_t>> frozen;
  ActivationMemory activations = ActivationMemory::All;
  // Rotary tables for positions 0..window-1, [window, head_dim / 2] (rebuilt for a longer window).
  std::vector<float> cos, sin;
  int64_t table_positions = 0;

  explicit Impl(int threads) : pool(threads) {}

  float* value(int id) { return params[size_t(id)].value.data(); }
  // What a linear layer multiplies by: the fake-quantized values under --qat.
  const float* matmul_value(int id) {
    return fake.empty() || fake[size_t(id)].empty() ? value(id) : fake[size_t(id)].data();
  }
  float* grad(int id) { return grads[size_t(id)].data(); }
  const float* bias_value(const LinearIds& l) { return l.bias == kNone ? nullptr : value(l.bias); }
  int head_weight() const { return head.weight == kNone ? embed : head.weight; }

  void norm(const float* x, int64_t rows, const NormIds& n, float* y) {
    const int64_t d = config.hidden_size;
    if (block == Block::Gpt2) ref::layer_norm(x, value(n.weight), value(n.bias), rows, d, float(config.norm_eps), y);
    else ref::rms_norm(x, value(n.weight), rows, d, float(config.norm_eps), y);
  }
  // dx written, the scale's (and shift's) gradients added.
  void norm_backward(const float* x, int64_t rows, const NormIds& n, const float* dy, float* dx) {
    const int64_t d = config.hidden_size;
    const float eps = float(config.norm_eps);
    if (block == Block::Gpt2)
      ref::layer_norm_backward(x, value(n.weight), rows, d, eps, dy, dx, grad(n.weight), grad(n.bias));
    else ref::rms_norm_backward(x, value(n.weight), rows, d, eps, dy, dx, grad(n.weight));
  }
  // Every linear layer of the blocks (the ones --qat fake-quantizes).
  std::vector<const LinearIds*> block_linears() const {
    std::vector<const LinearIds*> out;
    for (const LayerIds& l : layers)
      for (const LinearIds* linear : {&l.q, &l.k, &l.v, &l.qkv, &l.o, &l.gate, &l.up, &l.down})
        if (linear->weight != kNone) out.push_back(linear);
    return out;
  }

  void ensure_tables(int64_t window) {
    if (window <= table_positions) return;
    // The engine's tables for this many positions (LongRoPE picks its factors by the context, as
    // the engine does for a model instance of this context).
    RopeTableValues t = rope_table_values(config.rope, config.head_dim, window);
    cos = std::move(t.cos);
    sin = std::move(t.sin);
    table_positions = window;
  }

  // y[rows, out] = x[rows, in] w^T (+ b), the engine's CPU matmul.
  void linear(const float* x, int64_t rows, const LinearIds& l, float* y) {
    const std::vector<int64_t>& shape = params[size_t(l.weight)].shape;
    const Tensor w{const_cast<float*>(matmul_value(l.weight)), DType::F32, {shape[0], shape[1]}};
    cpu::matmul(x, rows, shape[1], w, bias_value(l), y, pool);
  }

  // dx written or added (InputGrad), dw / db added: the training GEMMs (cpu/train_gemm.h).
  void linear_backward(const float* x, int64_t rows, const LinearIds& l, const float* dy, float* dx,
                       std::vector<float>& scratch, InputGrad mode) {
    const std::vector<int64_t>& shape = params[size_t(l.weight)].shape;
    const int64_t out = shape[0], in = shape[1];
    float* target = dx;
    if (mode == InputGrad::Add) {
      scratch.resize(size_t(rows * in));
      target = scratch.data();
    }
    cpu::linear_input_grad(dy, rows, out, matmul_value(l.weight), in, target, pool);
    cpu::linear_weight_grad(dy, rows, out, x, in, grad(l.weight), pool);
    if (l.bias != kNone) {
      float* db = grad(l.bias);
      for (int64_t o = 0; o < out; ++o) {
        double sum = 0;
        for (int64_t r = 0; r < rows; ++r) sum += dy[r * out + o];
        db[o] += float(sum);
      }
    }
    if (mode == InputGrad::Add) ref::add(dx, target, rows * in);
  }

  // A pass's sizes: its windows and rows, the model's widths and the attention scale.
  struct Sizes {
    int64_t windows, window, rows, d, hd, q_dim, kv_dim, ff;
    float scale;
  };
  Sizes sizes(const Pass& f) const {
    const int64_t hd = config.head_dim;
    return {f.windows, f.window, f.windows * f.window, config.hidden_size, hd, config.n_heads * hd,
            config.n_kv_heads * hd, config.intermediate_size, 1.0f / std::sqrt(float(hd))};
  }

  Pass forward(std::span<const int32_t> tokens, int64_t windows, int64_t window);
  void layer_forward(const Pass& f, size_t li, LayerTape& t, std::vector<float>& x);
  void backward(Pass& f, const float* dnormed, std::span<const LayerGradient> layer_grads);
};

DecoderTrainer::DecoderTrainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DecoderTrainer::~DecoderTrainer() = default;

Result<std::unique_ptr<DecoderTrainer>> DecoderTrainer::from_model(Model& model, int threads) {
  const ModelConfig& c = model.config();
  const bool llama = c.arch && c.arch->family == "llama" && (c.model_type == "llama" || c.model_type == "qwen2");
  const bool gpt2 = c.arch && c.arch->family == "gpt2";
  if (!llama && !gpt2)
    return make_error("training supports the llama, qwen2 and gpt2 model types; this model is '" + c.model_type + "'");
  if (!c.low_rank.empty())
    return make_error("training a low-rank factored model (brisk_low_rank in config.json) is not supported; train "
                      "the model it was factored from");
  auto impl = std::make_unique<Impl>(threads);
  impl->config = c;
  impl->block = gpt2 ? Block::Gpt2 : Block::Llama;
  impl->layers.resize(size_t(c.n_layers));
  std::string problem;
  model.visit_tensors([&](const TensorSpec& spec, Tensor& slot) {
    if (slot.empty() || !problem.empty()) return;
    if (is_block_dtype(slot.dtype) || slot.block_order != BlockOrder::RowMajor) {
      problem = "'" + spec.name + "' is " + std::string(dtype_name(slot.dtype)) +
                (slot.block_order != BlockOrder::RowMajor ? " in a packed layout" : "") +
                ": training needs a float checkpoint loaded row-major";
      return;
    }
    const int id = int(impl->params.size());
    TrainState::Parameter p;
    p.name = spec.name;
    p.shape = slot.shape;
    p.stored_transposed = spec.kind == TensorKind::TransposedMatrix;
    p.value.resize(size_t(slot.numel()));
    for (size_t i = 0; i < p.value.size(); ++i) p.value[i] = load_as_f32(slot.data, slot.dtype, i);
    impl->params.push_back(std::move(p));
    const bool bias = spec.part == Part::Bias;
    auto set_linear = [&](LinearIds& l) { (bias ? l.bias : l.weight) = id; };
    auto set_norm = [&](NormIds& n) { (bias ? n.bias : n.weight) = id; };
    LayerIds* layer = spec.layer == kNoLayer ? nullptr : &impl->layers[size_t(spec.layer)];
    switch (spec.role) {
      case Role::TokenEmbed: impl->embed = id; break;
      case Role::PositionEmbed: impl->positions = id; break;
      case Role::FinalNorm: set_norm(impl->final_norm); break;
      case Role::Head: set_linear(impl->head); break;
      case Role::AttnNorm: set_norm(layer->attn_norm); break;
      case Role::MlpNorm: set_norm(layer->mlp_norm); break;
      case Role::AttnQkv: set_linear(layer->qkv); break;
      case Role::AttnQ: set_linear(layer->q); break;
      case Role::AttnK: set_linear(layer->k); break;
      case Role::AttnV: set_linear(layer->v); break;
      case Role::AttnO: set_linear(layer->o); break;
      case Role::MlpGate: set_linear(layer->gate); break;
      case Role::MlpUp: set_linear(layer->up); break;
      case Role::MlpDown: set_linear(layer->down); break;
      default: problem = "'" + spec.name + "' (" + role_name(spec.role) + ") has no training graph yet";
    }
  });
  if (!problem.empty()) return make_error(problem);
  const bool shifted_norms = gpt2;
  auto norm_ok = [&](const NormIds& n) { return n.weight != kNone && (n.bias != kNone) == shifted_norms; };
  if (impl->embed == kNone || !norm_ok(impl->final_norm) || (impl->positions != kNone) != gpt2)
    return make_error("training: the model lacks its token embeddings, position table or final norm");
  for (const LayerIds& l : impl->layers) {
    const bool attention = gpt2 ? l.qkv.weight != kNone : l.q.weight != kNone && l.k.weight != kNone && l.v.weight != kNone;
    const bool mlp = l.up.weight != kNone && l.down.weight != kNone && (l.gate.weight != kNone) == llama;
    if (!norm_ok(l.attn_norm) || !norm_ok(l.mlp_norm) || !attention || l.o.weight == kNone || !mlp)
      return make_error("training: a layer lacks one of its norms or projections (fused gate/up?)");
  }
  for (const TrainState::Parameter& p : impl->params) impl->grads.emplace_back(p.value.size(), 0.0f);
  return std::unique_ptr<DecoderTrainer>(new DecoderTrainer(std::move(impl)));
}

const ModelConfig& DecoderTrainer::config() const { return impl_->config; }
void DecoderTrainer::set_activation_memory(ActivationMemory memory) { impl_->activations = memory; }
int64_t DecoderTrainer::max_window() const {
  return impl_->positions == kNone ? std::numeric_limits<int64_t>::max() : impl_->config.max_position;
}
ThreadPool& DecoderTrainer::pool() { return impl_->pool; }
std::vector<TrainState::Parameter>& DecoderTrainer::parameters() { return impl_->params; }
std::vector<std::vector<float>>& DecoderTrainer::gradients() { return impl_->grads; }

std::optional<QuantSpec> QatRecipe::spec_of(const std::string& tensor) const {
  constexpr std::string_view kSuffix = ".weight";
  const std::string module =
      tensor.ends_with(kSuffix) ? tensor.substr(0, tensor.size() - kSuffix.size()) : tensor;
  if (auto m = modules.find(module); m != modules.end()) return m->second;
  return spec;
}

Status DecoderTrainer::set_fake_quantization(const QatRecipe& recipe) {
  Impl& s = *impl_;
  s.fake_specs.assign(s.params.size(), std::nullopt);
  s.fake.assign(s.params.size(), {});
  for (const LinearIds* linear : s.block_linears())
    s.fake_specs[size_t(linear->weight)] = recipe.spec_of(s.params[size_t(linear->weight)].name);
  return refresh_fake_quantization();
}

Status DecoderTrainer::refresh_fake_quantization() {
  Impl& s = *impl_;
  for (size_t id = 0; id < s.fake_specs.size(); ++id) {
    if (!s.fake_specs[id]) continue;
    const TrainState::Parameter& p = s.params[id];
    BRISK_ASSIGN(values, fake_quantize(p.value.data(), p.shape[0], p.shape[1], *s.fake_specs[id], p.name));
    s.fake[id] = std::move(values);
  }
  return ok_status();
}

void DecoderTrainer::freeze_zeros() {
  Impl& s = *impl_;
  s.frozen.assign(s.params.size(), {});
  for (const LinearIds* linear : s.block_linears()) {
    const std::vector<float>& w = s.params[size_t(linear->weight)].value;
    std::vector<int64_t>& zeros = s.frozen[size_t(linear->weight)];
    for (size_t i = 0; i < w.size(); ++i)
      if (w[i] == 0.0f) zeros.push_back(int64_t(i));
  }
}

void DecoderTrainer::add_l1_gradient(double lambda) {
  Impl& s = *impl_;
  const float l = float(lambda);
  for (const LinearIds* linear : s.block_linears()) {
    const std::vector<float>& w = s.params[size_t(linear->weight)].value;
    std::vector<float>& g = s.grads[size_t(linear->weight)];
    for (size_t i = 0; i < w.size(); ++i) g[i] += w[i] > 0 ? l : w[i] < 0 ? -l : 0.0f;
  }
}

void DecoderTrainer::drop_frozen_gradients() {
  for (size_t p = 0; p < impl_->frozen.size(); ++p)
    for (int64_t i : impl_->frozen[p]) impl_->grads[p][size_t(i)] = 0.0f;
}

void DecoderTrainer::zero_frozen_weights() {
  for (size_t p = 0; p < impl_->frozen.size(); ++p)
    for (int64_t i : impl_->frozen[p]) impl_->params[p].value[size_t(i)] = 0.0f;
}

int64_t DecoderTrainer::frozen_zeros() const {
  int64_t n = 0;
  for (const std::vector<int64_t>& z : impl_->frozen) n += int64_t(z.size());
  return n;
}

void DecoderTrainer::zero_gradients() {
  for (std::vector<float>& g : impl_->grads) std::fill(g.begin(), g.end(), 0.0f);
}

DecoderTrainer::Pass DecoderTrainer::Impl::forward(std::span<const int32_t> tokens, int64_t windows, int64_t window) {
  Impl& s = *this;
  const ModelConfig& c = s.config;
  BRISK_CHECK(windows >= 1 && window >= 1 && int64_t(tokens.size()) == windows * (window + 1),
              "DecoderTrainer: tokens must hold windows * (window + 1) ids");
  const int64_t rows = windows * window, d = c.hidden_size;
  if (s.block == Block::Llama) s.ensure_tables(window);
  BRISK_CHECK(s.positions == kNone || window <= c.max_position,
              "DecoderTrainer: a window of " + std::to_string(window) + " tokens passes the model's " +
                  std::to_string(c.max_position) + " learned positions");
  Pass f;
  f.windows = windows, f.window = window;
  for (int64_t w = 0; w < windows; ++w)
    for (int64_t i = 0; i < window; ++i) {
      const int32_t id = tokens[size_t(w * (window + 1) + i)], next = tokens[size_t(w * (window + 1) + i + 1)];
      BRISK_CHECK(id >= 0 && id < c.vocab_size && next >= 0 && next < c.vocab_size,
                  "DecoderTrainer: token id outside the vocabulary");
      f.inputs.push_back(id);
      f.targets.push_back(next);
      f.positions.push_back(int32_t(i));
    }
  std::vector<float> x(size_t(rows * d));
  const float* table = s.value(s.embed);
  for (int64_t r = 0; r < rows; ++r)
    std::copy_n(table + int64_t(f.inputs[size_t(r)]) * d, d, x.data() + r * d);
  if (s.positions != kNone)
    for (int64_t r = 0; r < rows; ++r) ref::add(x.data() + r * d, s.value(s.positions) + f.positions[size_t(r)] * d, d);
  f.tape.resize(s.layers.size());
  for (size_t li = 0; li < s.layers.size(); ++li) {
    LayerTape& t = f.tape[li];
    t.x = x;
    s.layer_forward(f, li, t, x);
    if (s.activations == ActivationMemory::LayerInputs) t.keep_input_only();
  }
  f.last = x;
  f.normed.resize(size_t(rows * d));
  s.norm(x.data(), rows, s.final_norm, f.normed.data());
  return f;
}

// One layer of a pass: the tape of layer li from its input t.x; x becomes its output.
void DecoderTrainer::Impl::layer_forward(const Pass& f, size_t li, LayerTape& t, std::vector<float>& x) {
  Impl& s = *this;
  const ModelConfig& c = s.config;
  [[maybe_unused]] const auto [windows, window, rows, d, hd, q_dim, kv_dim, ff, scale] = s.sizes(f);
  const bool rope = s.block == Block::Llama;
  x = t.x;
  std::vector<float> tmp(size_t(rows * d));
  const LayerIds& L = s.layers[li];
  t.n1.resize(size_t(rows * d));
  s.norm(x.data(), rows, L.attn_norm, t.n1.data());
  t.q.resize(size_t(rows * q_dim));
  t.k.resize(size_t(rows * kv_dim));
  t.v.resize(size_t(rows * kv_dim));
  if (L.qkv.weight != kNone) {  // one GEMM, its rows [q | k | v] split apart
    std::vector<float> qkv(size_t(rows * (q_dim + 2 * kv_dim)));
    s.linear(t.n1.data(), rows, L.qkv, qkv.data());
    split_columns(qkv.data(), rows, {{t.q.data(), q_dim}, {t.k.data(), kv_dim}, {t.v.data(), kv_dim}});
  } else {
    s.linear(t.n1.data(), rows, L.q, t.q.data());
    s.linear(t.n1.data(), rows, L.k, t.k.data());
    s.linear(t.n1.data(), rows, L.v, t.v.data());
  }
  if (rope) {
    ref::rope(t.q.data(), rows, c.n_heads, hd, f.positions.data(), s.cos.data(), s.sin.data());
    ref::rope(t.k.data(), rows, c.n_kv_heads, hd, f.positions.data(), s.cos.data(), s.sin.data());
  }
  t.att.resize(size_t(rows * q_dim));
  s.pool.parallel_for(windows, [&](int64_t first, int64_t last) {  // windows are independent
    for (int64_t w = first; w < last; ++w)
      ref::causal_attention(t.q.data() + w * window * q_dim, t.k.data() + w * window * kv_dim,
                            t.v.data() + w * window * kv_dim, window, c.n_heads, c.n_kv_heads, hd, scale,
                            t.att.data() + w * window * q_dim);
  });
  s.linear(t.att.data(), rows, L.o, tmp.data());
  ref::add(x.data(), tmp.data(), rows * d);
  t.h = x;
  t.n2.resize(size_t(rows * d));
  s.norm(x.data(), rows, L.mlp_norm, t.n2.data());
  t.up.resize(size_t(rows * ff));
  s.linear(t.n2.data(), rows, L.up, t.up.data());
  if (L.gate.weight != kNone) {
    t.gate.resize(size_t(rows * ff));
    t.act.resize(size_t(rows * ff));
    s.linear(t.n2.data(), rows, L.gate, t.gate.data());
    ref::silu_mul(t.gate.data(), t.up.data(), t.act.data(), rows * ff);
  } else {
    t.act = t.up;
    ref::gelu_tanh(t.act.data(), rows * ff);
  }
  s.linear(t.act.data(), rows, L.down, tmp.data());
  ref::add(x.data(), tmp.data(), rows * d);
}

void DecoderTrainer::Impl::backward(Pass& f, const float* dnormed, std::span<const LayerGradient> layer_grads) {
  Impl& s = *this;
  const ModelConfig& c = s.config;
  [[maybe_unused]] const auto [windows, window, rows, d, hd, q_dim, kv_dim, ff, scale] = s.sizes(f);
  std::vector<float> dx(size_t(rows * d)), dtmp(size_t(rows * d)), dnorm(size_t(rows * d)), scratch;
  s.norm_backward(f.last.data(), rows, s.final_norm, dnormed, dx.data());
  std::vector<float> dact(size_t(rows * ff)), dgate(size_t(rows * ff)), dup(size_t(rows * ff));
  std::vector<float> datt(size_t(rows * q_dim)), dq(size_t(rows * q_dim)), dk(size_t(rows * kv_dim)),
      dv(size_t(rows * kv_dim));
  for (size_t li = s.layers.size(); li-- > 0;) {
    // dx is dL/d(the layer's output): through the layers above, plus any loss on it directly.
    for (const LayerGradient& g : layer_grads)
      if (g.layer == int64_t(li)) ref::add(dx.data(), g.grad, rows * d);
    const LayerIds& L = s.layers[li];
    LayerTape& t = f.tape[li];
    if (!t.recorded()) {  // kept only its input: run the layer again
      std::vector<float> out;
      s.layer_forward(f, li, t, out);
    }
    // MLP: the residual passes dx on unchanged; the MLP's path adds through its norm.
    s.linear_backward(t.act.data(), rows, L.down, dx.data(), dact.data(), scratch, InputGrad::Write);
    if (L.gate.weight != kNone) {
      ref::silu_mul_backward(t.gate.data(), t.up.data(), dact.data(), dgate.data(), dup.data(), rows * ff);
      s.linear_backward(t.n2.data(), rows, L.gate, dgate.data(), dtmp.data(), scratch, InputGrad::Write);
      s.linear_backward(t.n2.data(), rows, L.up, dup.data(), dtmp.data(), scratch, InputGrad::Add);
    } else {
      ref::gelu_tanh_backward(t.up.data(), dact.data(), dup.data(), rows * ff);
      s.linear_backward(t.n2.data(), rows, L.up, dup.data(), dtmp.data(), scratch, InputGrad::Write);
    }
    s.norm_backward(t.h.data(), rows, L.mlp_norm, dtmp.data(), dnorm.data());
    ref::add(dx.data(), dnorm.data(), rows * d);
    // Attention.
    s.linear_backward(t.att.data(), rows, L.o, dx.data(), datt.data(), scratch, InputGrad::Write);
    s.pool.parallel_for(windows, [&](int64_t first, int64_t last) {
      for (int64_t w = first; w < last; ++w)
        ref::causal_attention_backward(t.q.data() + w * window * q_dim, t.k.data() + w * window * kv_dim,
                                       t.v.data() + w * window * kv_dim, datt.data() + w * window * q_dim, window,
                                       c.n_heads, c.n_kv_heads, hd, scale, dq.data() + w * window * q_dim,
                                       dk.data() + w * window * kv_dim, dv.data() + w * window * kv_dim);
    });
    if (s.block == Block::Llama) {
      ref::rope_backward(dq.data(), rows, c.n_heads, hd, f.positions.data(), s.cos.data(), s.sin.data());
      ref::rope_backward(dk.data(), rows, c.n_kv_heads, hd, f.positions.data(), s.cos.data(), s.sin.data());
    }
    if (L.qkv.weight != kNone) {
      std::vector<float> dqkv(size_t(rows * (q_dim + 2 * kv_dim)));
      join_columns({{dq.data(), q_dim}, {dk.data(), kv_dim}, {dv.data(), kv_dim}}, rows, dqkv.data());
      s.linear_backward(t.n1.data(), rows, L.qkv, dqkv.data(), dtmp.data(), scratch, InputGrad::Write);
    } else {
      s.linear_backward(t.n1.data(), rows, L.q, dq.data(), dtmp.data(), scratch, InputGrad::Write);
      s.linear_backward(t.n1.data(), rows, L.k, dk.data(), dtmp.data(), scratch, InputGrad::Add);
      s.linear_backward(t.n1.data(), rows, L.v, dv.data(), dtmp.data(), scratch, InputGrad::Add);
    }
    s.norm_backward(t.x.data(), rows, L.attn_norm, dtmp.data(), dnorm.data());
    ref::add(dx.data(), dnorm.data(), rows * d);
    if (s.activations == ActivationMemory::LayerInputs) t.keep_input_only();
  }
  ref::embedding_backward(f.inputs.data(), rows, d, dx.data(), s.grad(s.embed));
  if (s.positions != kNone) ref::embedding_backward(f.positions.data(), rows, d, dx.data(), s.grad(s.positions));
}

double DecoderTrainer::cross_entropy_step(std::span<const int32_t> tokens, int64_t windows, int64_t window) {
  Impl& s = *impl_;
  BRISK_CHECK(s.head.bias == kNone, "DecoderTrainer: a biased output head has no training graph");
  Pass f = s.forward(tokens, windows, window);
  const int64_t rows = windows * window, d = s.config.hidden_size;
  std::vector<float> dnormed(size_t(rows * d));
  const double loss = head_loss({f.normed.data(), s.value(s.head_weight()), d}, nullptr, rows, s.config.vocab_size,
                                f.targets.data(), {}, dnormed.data(), s.grad(s.head_weight()), s.pool)
                          .total;
  s.backward(f, dnormed.data(), {});
  return loss;
}

void DecoderTrainer::PassDeleter::operator()(Pass* pass) const { delete pass; }

DecoderTrainer::PassPtr DecoderTrainer::forward(std::span<const int32_t> tokens, int64_t windows, int64_t window) {
  return PassPtr(new Pass(impl_->forward(tokens, windows, window)));
}
int64_t DecoderTrainer::rows(const Pass& pass) const { return pass.windows * pass.window; }
std::span<const int32_t> DecoderTrainer::targets(const Pass& pass) const { return pass.targets; }
std::span<const float> DecoderTrainer::final_hidden(const Pass& pass) const { return pass.normed; }
std::span<const float> DecoderTrainer::layer_output(const Pass& pass, int64_t layer) const {
  BRISK_CHECK(layer >= 0 && layer < int64_t(pass.tape.size()), "DecoderTrainer: no layer " + std::to_string(layer));
  return size_t(layer) + 1 < pass.tape.size() ? std::span<const float>(pass.tape[size_t(layer) + 1].x)
                                              : std::span<const float>(pass.last);
}
const float* DecoderTrainer::head() const { return impl_->params[size_t(impl_->head_weight())].value.data(); }
float* DecoderTrainer::head_gradient() { return impl_->grad(impl_->head_weight()); }
void DecoderTrainer::backward(Pass& pass, const float* dfinal, std::span<const LayerGradient> layer_grads) {
  BRISK_CHECK(impl_->head.bias == kNone, "DecoderTrainer: a biased output head has no training graph");
  impl_->backward(pass, dfinal, layer_grads);
}

double DecoderTrainer::cross_entropy(std::span<const int32_t> tokens, int64_t windows, int64_t window) {
  Impl& s = *impl_;
  const Pass f = s.forward(tokens, windows, window);
  return head_loss({f.normed.data(), s.value(s.head_weight()), s.config.hidden_size}, nullptr, windows * window,
                   s.config.vocab_size, f.targets.data(), {}, nullptr, nullptr, s.pool)
      .total;
}

std::vector<float> DecoderTrainer::logits(std::span<const int32_t> tokens, int64_t windows, int64_t window) {
  Impl& s = *impl_;
  const Pass f = s.forward(tokens, windows, window);
  const int64_t rows = windows * window;
  std::vector<float> out(size_t(rows * s.config.vocab_size));
  LinearIds head = s.head;
  head.weight = s.head_weight();
  s.linear(f.normed.data(), rows, head, out.data());
  return out;
}

}  // namespace brisk::train
