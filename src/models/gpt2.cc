// GPT-2: learned positions, pre-LayerNorm blocks with biases, GELU (tanh) MLP, tied head.
// x += Attn(LN1(x)); x += MLP(LN2(x)); logits = LN_f(x) · wte^T.
#include <cmath>

#include "models/model.h"

namespace brisk {

namespace {

struct Gpt2Layer {
  Tensor ln1_w, ln1_b;        // [d]
  Tensor w_qkv, b_qkv;        // [3d, d] (stored [d, 3d] as Conv1D), [3d]
  Tensor w_proj, b_proj;      // [d, d], [d]
  Tensor ln2_w, ln2_b;        // [d]
  Tensor w_fc, b_fc;          // [ff, d], [ff]
  Tensor w_out, b_out;        // [d, ff], [d]
};

class Gpt2 final : public Model {
 public:
  Gpt2(const ModelConfig& c, Backend& backend, const ModelOptions& options)
      : Model(c, backend, options), layers_(size_t(c.n_layers)) {
    const int64_t d = c.hidden_size;
    x_ = activation(d);
    h_ = activation(d);
    qkv_ = activation(3 * d);
    q_ = activation(d);
    attn_ = activation(d);
    ff_ = activation(c.intermediate_size);
  }

  void visit_tensors(const TensorVisitor& visit) override {
    const auto& c = config_;
    const int64_t d = c.hidden_size, ff = c.intermediate_size;
    const std::string t = "transformer.";
    auto conv = [&](const std::string& name, int64_t in, int64_t out, Tensor& slot) {
      visit({name, {in, out}, TensorKind::TransposedMatrix}, slot);
    };
    auto vector = [&](const std::string& name, int64_t n, Tensor& slot) {
      visit({name, {n}, TensorKind::Vector}, slot);
    };
    visit({t + "wte.weight", {c.vocab_size, d}, TensorKind::Embedding}, wte_);
    visit({t + "wpe.weight", {c.max_position, d}, TensorKind::Embedding}, wpe_);
    for (int64_t i = 0; i < c.n_layers; ++i) {
      Gpt2Layer& L = layers_[size_t(i)];
      const std::string p = t + "h." + std::to_string(i) + ".";
      vector(p + "ln_1.weight", d, L.ln1_w);
      vector(p + "ln_1.bias", d, L.ln1_b);
      conv(p + "attn.c_attn.weight", d, 3 * d, L.w_qkv);
      vector(p + "attn.c_attn.bias", 3 * d, L.b_qkv);
      conv(p + "attn.c_proj.weight", d, d, L.w_proj);
      vector(p + "attn.c_proj.bias", d, L.b_proj);
      vector(p + "ln_2.weight", d, L.ln2_w);
      vector(p + "ln_2.bias", d, L.ln2_b);
      conv(p + "mlp.c_fc.weight", d, ff, L.w_fc);
      vector(p + "mlp.c_fc.bias", ff, L.b_fc);
      conv(p + "mlp.c_proj.weight", ff, d, L.w_out);
      vector(p + "mlp.c_proj.bias", d, L.b_out);
    }
    vector(t + "ln_f.weight", d, lnf_w_);
    vector(t + "ln_f.bias", d, lnf_b_);
    visit({"lm_head.weight", {c.vocab_size, d}, TensorKind::Matrix, Presence::Optional}, lm_head_);
  }

  const Tensor& output_head() const override { return lm_head_.empty() ? wte_ : lm_head_; }

  void run(const Batch& batch, KvCache& cache) override {
    const auto& c = config_;
    const int64_t n = batch.rows, d = c.hidden_size, ff = c.intermediate_size, dh = c.head_dim;
    const float eps = float(c.norm_eps);
    const float scale = 1.0f / std::sqrt(float(dh));
    Backend& be = backend_;

    float *x = x_.data(), *h = h_.data(), *qkv = qkv_.data(), *q = q_.data(), *attn = attn_.data();
    float* ff_act = ff_.data();
    be.gather_rows(wte_, batch.tokens_dev, n, x, Accumulate::No);
    be.gather_rows(wpe_, batch.positions_dev, n, x, Accumulate::Yes);
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const Gpt2Layer& L = layers_[size_t(l)];
      be.layer_norm(x, vec(L.ln1_w), vec(L.ln1_b), n, d, eps, h);
      be.matmul(h, n, d, L.w_qkv, vec(L.b_qkv), qkv);
      // The fused projection yields [q | k | v] per row; k and v go to the cache.
      be.copy_2d(qkv, 3 * d, q, d, n, d);
      const KvPools kv = cache.layer(l);
      be.store_kv(qkv + d, qkv + 2 * d, n, 3 * d, batch.slots_dev, kv);
      be.attention(q, kv, attn, batch.attention, c.n_heads, scale);
      be.matmul(attn, n, d, L.w_proj, vec(L.b_proj), h);
      be.add(x, h, n * d);

      be.layer_norm(x, vec(L.ln2_w), vec(L.ln2_b), n, d, eps, h);
      be.matmul(h, n, d, L.w_fc, vec(L.b_fc), ff_act);
      be.gelu_tanh(ff_act, n * ff);
      be.matmul(ff_act, n, ff, L.w_out, vec(L.b_out), h);
      be.add(x, h, n * d);
    }
    const int64_t n_logits = int64_t(batch.logit_rows.size());
    if (n_logits == 0) return;
    be.layer_norm(logit_rows(batch, x), vec(lnf_w_), vec(lnf_b_), n_logits, d, eps, h);
    project_to_logits(h, n_logits);
  }

 private:
  Tensor wte_, wpe_, lnf_w_, lnf_b_, lm_head_;
  std::vector<Gpt2Layer> layers_;
  Buffer x_, h_, qkv_, q_, attn_, ff_;  // activations [max_rows, width], allocated once
};

}  // namespace

std::unique_ptr<Model> make_gpt2(const ModelConfig& config, Backend& backend,
                                  const ModelOptions& options) {
  return std::make_unique<Gpt2>(config, backend, options);
}

}  // namespace brisk
