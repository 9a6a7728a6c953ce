// GPT-2: learned positions, pre-LayerNorm blocks with biases, GELU (tanh) MLP, tied head.
// x += Attn(LN1(x)); x += MLP(LN2(x)); logits = LN_f(x) · wte^T.
#include <cmath>

#include "formats/gguf_writer.h"
#include "models/gguf_model.h"
#include "models/model.h"

namespace brisk {

namespace {

struct Gpt2Layer {
  Tensor ln1_w, ln1_b, ln2_w, ln2_b;  // [d]
  Linear qkv;                         // [3d, d] (stored [d, 3d] as Conv1D) + [3d]
  Linear proj;                        // [d, d] + [d]
  Linear fc;                          // [ff, d] + [ff]
  Linear out;                         // [d, ff] + [d]
};

struct Gpt2Weights {
  Tensor wte, wpe, lnf_w, lnf_b;
  Linear head;  // optional copy of wte
  std::vector<Gpt2Layer> layers;

  explicit Gpt2Weights(const ModelConfig& c) : layers(size_t(c.n_layers)) {}

  void visit(const ModelConfig& c, const TensorVisitor& visit) {
    // a: the attention width, n_embd in a whole model (a tensor-parallel rank's share is smaller).
    const int64_t d = c.hidden_size, ff = c.intermediate_size, a = c.n_heads * c.head_dim;
    constexpr TensorKind conv1d = TensorKind::TransposedMatrix;
    const TensorDeclarer model(visit, c.low_rank, "transformer.");
    model.embedding("wte", Role::TokenEmbed, c.vocab_rows(), d, wte);
    model.embedding("wpe", Role::PositionEmbed, c.max_position, d, wpe);
    for (int64_t i = 0; i < c.n_layers; ++i) {
      Gpt2Layer& L = layers[size_t(i)];
      const TensorDeclarer layer(visit, c.low_rank, "transformer.h." + std::to_string(i) + ".", i);
      layer.norm("ln_1", Role::AttnNorm, d, L.ln1_w, &L.ln1_b);
      layer.linear("attn.c_attn", Role::AttnQkv, 3 * a, d, L.qkv, HasBias::Yes, conv1d);
      layer.linear("attn.c_proj", Role::AttnO, d, a, L.proj, HasBias::Yes, conv1d);
      layer.norm("ln_2", Role::MlpNorm, d, L.ln2_w, &L.ln2_b);
      layer.linear("mlp.c_fc", Role::MlpUp, ff, d, L.fc, HasBias::Yes, conv1d);
      layer.linear("mlp.c_proj", Role::MlpDown, d, ff, L.out, HasBias::Yes, conv1d);
    }
    model.norm("ln_f", Role::FinalNorm, d, lnf_w, &lnf_b);
    TensorDeclarer(visit, c.low_rank, "").linear("lm_head", Role::Head, c.vocab_rows(), d, head, HasBias::No, TensorKind::Matrix,
                                     Presence::Optional);
  }
};

class Gpt2 final : public Model {
 public:
  Gpt2(const ModelConfig& c, Backend& backend, const ModelOptions& options) : Model(c, backend, options), w_(c) {
    const int64_t d = c.hidden_size, a = c.n_heads * c.head_dim;
    x_ = activation(d);
    h_ = activation(d);
    qkv_ = activation(3 * a);
    q_ = activation(a);
    attn_ = activation(a);
    ff_ = activation(c.intermediate_size);
  }

  void visit_tensors(const TensorVisitor& visit) override { w_.visit(config_, visit); }

  const Tensor& output_head() const override { return w_.head.weight.empty() ? w_.wte : w_.head.weight; }

  void run(const Batch& batch, KvCache& cache) override {
    const auto& c = config_;
    const int64_t n = batch.rows, d = c.hidden_size, ff = c.intermediate_size, dh = c.head_dim, a = c.n_heads * dh;
    const float eps = float(c.norm_eps);
    const float scale = 1.0f / std::sqrt(float(dh));
    Backend& be = backend_;

    float *x = x_.data(), *h = h_.data(), *qkv = qkv_.data(), *q = q_.data(), *attn = attn_.data();
    float* ff_act = ff_.data();
    if (!receive_stage_input(batch, x)) {
      be.gather_rows(w_.wte, batch.tokens_dev, n, x, Accumulate::No);
      be.gather_rows(w_.wpe, batch.positions_dev, n, x, Accumulate::Yes);
    }
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const Gpt2Layer& L = w_.layers[size_t(l)];
      be.layer_norm(x, vec(L.ln1_w), vec(L.ln1_b), n, d, eps, h);
      be.linear(h, n, L.qkv, qkv);
      // The fused projection yields [q | k | v] per row; k and v go to the cache.
      be.copy_2d(qkv, 3 * a, q, a, n, a);
      const KvPools kv = cache.layer(l);
      be.store_kv(qkv + a, qkv + 2 * a, n, 3 * a, batch.slots_dev, kv);
      be.attention(q, kv, attn, batch.attention, c.n_heads, scale);
      be.linear(attn, n, L.proj, h);
      be.add(x, h, n * d);

      be.layer_norm(x, vec(L.ln2_w), vec(L.ln2_b), n, d, eps, h);
      be.linear(h, n, L.fc, ff_act);
      be.gelu_tanh(ff_act, n * ff);
      be.linear(ff_act, n, L.out, h);
      be.add(x, h, n * d);
    }
    if (send_stage_output(batch, x)) return;
    const int64_t n_logits = int64_t(batch.logit_rows.size());
    if (n_logits == 0) return;
    be.layer_norm(logit_rows(batch, x), vec(w_.lnf_w), vec(w_.lnf_b), n_logits, d, eps, h);
    project_to_logits(h, n_logits);
  }

 private:
  Gpt2Weights w_;
  Buffer x_, h_, qkv_, q_, attn_, ff_;  // activations [max_rows, width], allocated once
};

constexpr ShapeKeys kGpt2Shape{.layers = "n_layer", .hidden = "n_embd", .heads = "n_head", .ffn = "n_inner"};

Result<ModelConfig> parse_gpt2(const ConfigFields& f, ModelConfig c) {
  const std::string& where = f.where();
  const ShapeKeys& k = kGpt2Shape;
  BRISK_ASSIGN(vocab, f.integer("vocab_size"));
  BRISK_ASSIGN(hidden, bounded_size(f, k.hidden, kMaxWidth));  // n_inner defaults to 4x
  BRISK_ASSIGN(layers, bounded_size(f, k.layers, kMaxLayers));
  BRISK_ASSIGN(heads, f.integer(k.heads));
  BRISK_ASSIGN(max_pos, f.integer_or("n_positions", 1024));
  BRISK_ASSIGN(inner, f.integer_or(k.ffn, 4 * hidden));
  BRISK_ASSIGN(eps, f.positive_number_or("layer_norm_epsilon", 1e-5));
  BRISK_ASSIGN(tie, f.boolean_or("tie_word_embeddings", true));
  BRISK_ASSIGN(by_layer, f.boolean_or("scale_attn_by_inverse_layer_idx", false));
  BRISK_ASSIGN(scale_weights, f.boolean_or("scale_attn_weights", true));
  if (by_layer || !scale_weights)
    return make_error(where + ": GPT-2 attention scaling variants (scale_attn_by_inverse_layer_idx, scale_attn_weights=false) are not supported");
  if (hidden % heads != 0) return make_error(where + ": n_embd is not divisible by n_head");
  BRISK_ASSIGN(act, f.string_or("activation_function", "gelu_new"));
  if (act != "gelu_new" && act != "gelu_pytorch_tanh")
    return make_error(where + ": unsupported activation_function '" + act + "' (supported: gelu_new)");
  if (!tie) return make_error(where + ": GPT-2 with untied lm_head is not supported");
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = inner;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = heads;
  c.head_dim = hidden / heads;
  c.max_position = max_pos;
  c.norm_eps = eps;
  c.activation = Activation::GeluTanh;
  c.tie_word_embeddings = true;
  c.qkv_bias = c.o_bias = c.mlp_bias = true;
  return c;
}

constexpr const char* kLayerNormEpsilon = "attention.layer_norm_epsilon";  // after "gpt2."

Result<Json> gpt2_gguf_config(const GgufFile& f, const GgufArchitecture& arch) {
  BRISK_ASSIGN(common, read_gguf_common(f, arch));
  BRISK_ASSIGN(eps, f.number(std::string(arch.name) + "." + kLayerNormEpsilon));
  Json j = common.json;
  j.update({{"n_embd", common.hidden}, {"n_inner", common.ff}, {"n_layer", common.layers}, {"n_head", common.heads},
            {"n_positions", common.context}, {"layer_norm_epsilon", eps}, {"tie_word_embeddings", true}});
  return j;
}

Status gpt2_gguf_metadata(const ModelConfig& c, const GgufArchitecture& arch, GgufWriter& out) {
  write_gguf_common(c, arch, out);
  out.set_f32(std::string(arch.name) + "." + kLayerNormEpsilon, float(c.norm_eps));
  return ok_status();
}

}  // namespace

extern const Architecture kGpt2Architecture{
    .family = "gpt2",
    .model_types = {"gpt2"},
    .shape_keys = kGpt2Shape,
    .parse_config = parse_gpt2,
    .tensors = collect_tensor_specs<Gpt2Weights>,
    .make = construct_model<Gpt2>,
    .gguf = {{"gpt2", "gpt2", false}},
    .gguf_config = gpt2_gguf_config,
    .gguf_metadata = gpt2_gguf_metadata,
    .tensor_parallel = true,
    .select_layers = [](ModelConfig&, int64_t, int64_t) {},  // no per-layer settings
};

}  // namespace brisk
