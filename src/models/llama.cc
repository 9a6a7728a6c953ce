// The Llama family: Llama 1/2/3, Mistral (within its window) and Qwen2 (q/k/v biases).
// Pre-norm decoder: x += Attn(RMSNorm(x)); x += SwiGLU(RMSNorm(x)); logits = Head(RMSNorm(x)).
#include <cmath>

#include "models/model.h"

namespace brisk {

namespace {

struct LlamaLayer {
  Tensor attn_norm;                // [d]
  Tensor wq, wk, wv, wo;           // [h*dh, d], [kv*dh, d], [kv*dh, d], [d, h*dh]
  Tensor bq, bk, bv, bo;           // optional biases (Qwen2: q/k/v; attention_bias: all four)
  Tensor mlp_norm;                 // [d]
  Tensor w_gate, w_up, w_down;     // [ff, d], [ff, d], [d, ff]
  Tensor b_gate, b_up, b_down;     // optional (mlp_bias)
};

class Llama final : public Model {
 public:
  Llama(const ModelConfig& c, Backend& backend, const ModelOptions& options)
      : Model(c, backend, options), layers_(size_t(c.n_layers)) {
    const int64_t q_dim = c.n_heads * c.head_dim;
    x_ = activation(c.hidden_size);
    h_ = activation(std::max(c.hidden_size, q_dim));
    q_ = activation(q_dim);
    k_ = activation(c.n_kv_heads * c.head_dim);
    v_ = activation(c.n_kv_heads * c.head_dim);
    attn_ = activation(q_dim);
    gate_ = activation(c.intermediate_size);
    up_ = activation(c.intermediate_size);
    build_rope_tables();
  }

  void visit_tensors(const TensorVisitor& visit) override {
    const auto& c = config_;
    const int64_t d = c.hidden_size, ff = c.intermediate_size;
    const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
    auto matrix = [&](const std::string& name, std::vector<int64_t> shape, Tensor& slot) {
      visit({name, std::move(shape), TensorKind::Matrix}, slot);
    };
    auto vector = [&](const std::string& name, int64_t n, Tensor& slot, bool present) {
      if (present) visit({name, {n}, TensorKind::Vector}, slot);
    };
    visit({"model.embed_tokens.weight", {c.vocab_size, d}, TensorKind::Embedding}, embed_);
    for (int64_t i = 0; i < c.n_layers; ++i) {
      LlamaLayer& L = layers_[size_t(i)];
      const std::string p = "model.layers." + std::to_string(i) + ".";
      vector(p + "input_layernorm.weight", d, L.attn_norm, true);
      matrix(p + "self_attn.q_proj.weight", {q_dim, d}, L.wq);
      matrix(p + "self_attn.k_proj.weight", {kv_dim, d}, L.wk);
      matrix(p + "self_attn.v_proj.weight", {kv_dim, d}, L.wv);
      matrix(p + "self_attn.o_proj.weight", {d, q_dim}, L.wo);
      vector(p + "self_attn.q_proj.bias", q_dim, L.bq, c.qkv_bias);
      vector(p + "self_attn.k_proj.bias", kv_dim, L.bk, c.qkv_bias);
      vector(p + "self_attn.v_proj.bias", kv_dim, L.bv, c.qkv_bias);
      vector(p + "self_attn.o_proj.bias", d, L.bo, c.o_bias);
      vector(p + "post_attention_layernorm.weight", d, L.mlp_norm, true);
      matrix(p + "mlp.gate_proj.weight", {ff, d}, L.w_gate);
      matrix(p + "mlp.up_proj.weight", {ff, d}, L.w_up);
      matrix(p + "mlp.down_proj.weight", {d, ff}, L.w_down);
      vector(p + "mlp.gate_proj.bias", ff, L.b_gate, c.mlp_bias);
      vector(p + "mlp.up_proj.bias", ff, L.b_up, c.mlp_bias);
      vector(p + "mlp.down_proj.bias", d, L.b_down, c.mlp_bias);
    }
    vector("model.norm.weight", d, final_norm_, true);
    // Tied checkpoints usually omit lm_head; some save a copy, which is then used as it is.
    visit({"lm_head.weight", {c.vocab_size, d}, TensorKind::Matrix,
           c.tie_word_embeddings ? Presence::Optional : Presence::Required},
          lm_head_);
  }

  void place_weights() override {
    for (LlamaLayer& L : layers_) {
      backend_.place_adjacent({&L.wq, &L.wk, &L.wv});
      backend_.place_adjacent({&L.w_gate, &L.w_up});
    }
  }

  const Tensor& output_head() const override { return lm_head_.empty() ? embed_ : lm_head_; }

  void run(const Batch& batch, KvCache& cache) override {
    const auto& c = config_;
    const int64_t n = batch.rows, d = c.hidden_size, ff = c.intermediate_size, dh = c.head_dim;
    const int64_t q_dim = c.n_heads * dh;
    const float eps = float(c.norm_eps), scale = 1.0f / std::sqrt(float(dh));
    Backend& be = backend_;
    float *x = x_.data(), *h = h_.data(), *q = q_.data(), *k = k_.data(), *v = v_.data();
    float *attn = attn_.data(), *gate = gate_.data(), *up = up_.data();
    const int32_t* pos = batch.positions_dev;

    be.gather_rows(embed_, batch.tokens_dev, n, x, Accumulate::No);
    be.rms_norm(x, vec(layers_[0].attn_norm), n, d, eps, h);
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const LlamaLayer& L = layers_[size_t(l)];
      // h = attn_norm(x) here.
      be.matmul_same_input(h, n, d, {{&L.wq, optional_vec(L.bq), q}, {&L.wk, optional_vec(L.bk), k},
                                     {&L.wv, optional_vec(L.bv), v}});
      const KvPools kv = cache.layer(l);
      be.rope_store_kv(q, k, v, n, c.n_heads, pos, cos_.data(), sin_.data(), batch.slots_dev, kv);
      be.attention(q, kv, attn, batch.attention, c.n_heads, scale);
      be.matmul(attn, n, q_dim, L.wo, optional_vec(L.bo), h);
      be.add_rms_norm(x, h, vec(L.mlp_norm), n, d, eps, h);

      be.matmul_swiglu(h, n, d, {&L.w_gate, optional_vec(L.b_gate), gate}, {&L.w_up, optional_vec(L.b_up), up});
      be.matmul(gate, n, ff, L.w_down, optional_vec(L.b_down), h);
      // The residual add, fused with the next layer's input norm where there is one.
      if (l + 1 < c.n_layers)
        be.add_rms_norm(x, h, vec(layers_[size_t(l + 1)].attn_norm), n, d, eps, h);
      else
        be.add(x, h, n * d);
    }
    const int64_t n_logits = int64_t(batch.logit_rows.size());
    if (n_logits == 0) return;
    be.rms_norm(logit_rows(batch, x), vec(final_norm_), n_logits, d, eps, h);
    project_to_logits(h, n_logits);
  }

 private:
  // cos/sin of pos * inv_freq for every position this instance supports.
  void build_rope_tables() {
    const std::vector<float> inv = config_.rope_inv_freq();
    const int64_t half = int64_t(inv.size());
    std::vector<float> cos_host(size_t(context_ * half)), sin_host(size_t(context_ * half));
    for (int64_t p = 0; p < context_; ++p)
      for (int64_t i = 0; i < half; ++i) {
        // transformers forms the angle in fp32 (inv_freq * position); so do we, then cos/sin exactly.
        const float angle = float(p) * inv[size_t(i)];
        cos_host[size_t(p * half + i)] = float(std::cos(double(angle)));
        sin_host[size_t(p * half + i)] = float(std::sin(double(angle)));
      }
    cos_ = backend_.allocate(cos_host.size());
    sin_ = backend_.allocate(sin_host.size());
    backend_.copy_to_device(cos_.data(), cos_host.data(), cos_host.size());
    backend_.copy_to_device(sin_.data(), sin_host.data(), sin_host.size());
  }

  Tensor embed_, final_norm_, lm_head_;
  std::vector<LlamaLayer> layers_;
  // Activations [max_rows, width] and rope tables, allocated once.
  Buffer x_, h_, q_, k_, v_, attn_, gate_, up_, cos_, sin_;
};

}  // namespace

std::unique_ptr<Model> make_llama(const ModelConfig& config, Backend& backend,
                                  const ModelOptions& options) {
  return std::make_unique<Llama>(config, backend, options);
}

}  // namespace brisk
