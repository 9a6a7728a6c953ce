// GPT-2: learned positions, pre-LayerNorm blocks with biases, GELU (tanh) MLP, tied head.
// x += Attn(LN1(x)); x += MLP(LN2(x)); logits = LN_f(x) · wte^T.
#include <cmath>
#include <cstring>

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
    const int64_t max_rows = max_rows_;
    const int64_t d = c.hidden_size;
    x_.resize(size_t(max_rows * d));
    h_.resize(size_t(max_rows * d));
    qkv_.resize(size_t(max_rows * 3 * d));
    q_.resize(size_t(max_rows * d));
    attn_.resize(size_t(max_rows * d));
    ff_.resize(size_t(max_rows * c.intermediate_size));
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

  void forward(const int32_t* tokens, int64_t n, int64_t start, KvCache& cache, LogitRows which,
               float* logits) override {
    BRISK_CHECK(n > 0 && n <= max_rows_, "forward: row count out of range");
    BRISK_CHECK(start + n <= cache.capacity() && start + n <= context_,
                "forward: past the context");
    const auto& c = config_;
    const int64_t d = c.hidden_size, ff = c.intermediate_size, dh = c.head_dim;
    const float eps = float(c.norm_eps);
    const float scale = 1.0f / std::sqrt(float(dh));
    Backend& be = backend_;

    for (int64_t r = 0; r < n; ++r) {
      BRISK_CHECK(tokens[r] >= 0 && tokens[r] < c.vocab_size, "token id out of range");
      float* xr = x_.data() + r * d;
      const size_t tok = size_t(tokens[r]) * size_t(d), pos = size_t(start + r) * size_t(d);
      for (int64_t i = 0; i < d; ++i)
        xr[i] = load_as_f32(wte_.data, wte_.dtype, tok + size_t(i)) +
                load_as_f32(wpe_.data, wpe_.dtype, pos + size_t(i));
    }
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const Gpt2Layer& L = layers_[size_t(l)];
      be.layer_norm(x_.data(), vec(L.ln1_w), vec(L.ln1_b), n, d, eps, h_.data());
      be.matmul(h_.data(), n, d, L.w_qkv, vec(L.b_qkv), qkv_.data());
      // The fused projection yields [q | k | v] per row; k and v go to the cache.
      float* k_new = cache.k(l, start);
      float* v_new = cache.v(l, start);
      for (int64_t r = 0; r < n; ++r) {
        const float* row = qkv_.data() + r * 3 * d;
        std::memcpy(q_.data() + r * d, row, size_t(d) * sizeof(float));
        std::memcpy(k_new + r * d, row + d, size_t(d) * sizeof(float));
        std::memcpy(v_new + r * d, row + 2 * d, size_t(d) * sizeof(float));
      }
      be.attention(q_.data(), cache.k(l), cache.v(l), attn_.data(), n, start, c.n_heads, c.n_heads,
                   dh, scale);
      be.matmul(attn_.data(), n, d, L.w_proj, vec(L.b_proj), h_.data());
      be.add(x_.data(), h_.data(), n * d);

      be.layer_norm(x_.data(), vec(L.ln2_w), vec(L.ln2_b), n, d, eps, h_.data());
      be.matmul(h_.data(), n, d, L.w_fc, vec(L.b_fc), ff_.data());
      be.gelu_tanh(ff_.data(), n * ff);
      be.matmul(ff_.data(), n, ff, L.w_out, vec(L.b_out), h_.data());
      be.add(x_.data(), h_.data(), n * d);
    }
    if (which == LogitRows::None) return;
    const int64_t first = which == LogitRows::Last ? n - 1 : 0;
    const int64_t rows = n - first;
    be.layer_norm(x_.data() + first * d, vec(lnf_w_), vec(lnf_b_), rows, d, eps, h_.data());
    be.matmul(h_.data(), rows, d, output_head(), nullptr, logits);
  }

 private:
  Tensor wte_, wpe_, lnf_w_, lnf_b_, lm_head_;
  std::vector<Gpt2Layer> layers_;
  std::vector<float> x_, h_, qkv_, q_, attn_, ff_;  // activations, sized for max_rows once
};

}  // namespace

std::unique_ptr<Model> make_gpt2(const ModelConfig& config, Backend& backend,
                                  const ModelOptions& options) {
  return std::make_unique<Gpt2>(config, backend, options);
}

}  // namespace brisk
