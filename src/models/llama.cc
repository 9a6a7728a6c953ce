// The Llama family: Llama 1/2/3, Mistral (sliding window), Qwen2 (q/k/v biases) and Phi-3
// (q/k/v and gate/up fused into one matrix each, LongRoPE).
// Pre-norm decoder: x += Attn(RMSNorm(x)); x += SwiGLU(RMSNorm(x)); logits = Head(RMSNorm(x)).
#include <any>
#include <cmath>

#include "formats/gguf_writer.h"
#include "models/gguf_model.h"
#include "models/model.h"
#include "models/decoder_activations.h"
#include "models/rope_tables.h"

namespace brisk {

namespace {

// What the family's members differ in beyond the shared config fields.
struct LlamaSettings {
  bool fused_projections = false;  // Phi-3: qkv_proj [q | k | v] and gate_up_proj [gate | up]
  std::vector<int64_t> layer_windows;  // per layer: > 0 a sliding window of that many keys, 0 full
};

const LlamaSettings& llama_settings(const ModelConfig& c) { return std::any_cast<const LlamaSettings&>(c.family); }

struct LlamaLayer {
  Tensor attn_norm, mlp_norm;  // [d]
  Linear q, k, v, o;           // [h*dh, d], [kv*dh, d], [kv*dh, d], [d, h*dh]; biases: Qwen2 q/k/v, attention_bias all
  Linear gate, up, down;       // [ff, d], [ff, d], [d, ff]; biases with mlp_bias
  Linear qkv, gate_up;         // fused: [(h + 2 kv) * dh, d], [2 ff, d]; q/k/v and gate/up then stay empty
};

struct LlamaWeights {
  Tensor embed, final_norm;
  Linear head;  // empty when tied to embed
  std::vector<LlamaLayer> layers;

  explicit LlamaWeights(const ModelConfig& c) : layers(size_t(c.n_layers)) {}

  void visit(const ModelConfig& c, const TensorVisitor& visit) {
    const int64_t d = c.hidden_size, ff = c.intermediate_size;
    const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
    const HasBias qkv_bias{c.qkv_bias}, o_bias{c.o_bias}, mlp_bias{c.mlp_bias};
    const bool fused = llama_settings(c).fused_projections;
    const TensorDeclarer model(visit, c.low_rank, "model.");
    model.embedding("embed_tokens", Role::TokenEmbed, c.vocab_rows(), d, embed);
    for (int64_t i = 0; i < c.n_layers; ++i) {
      LlamaLayer& L = layers[size_t(i)];
      const TensorDeclarer layer(visit, c.low_rank, "model.layers." + std::to_string(i) + ".", i);
      layer.norm("input_layernorm", Role::AttnNorm, d, L.attn_norm);
      if (fused) {
        layer.linear("self_attn.qkv_proj", Role::AttnQkv, q_dim + 2 * kv_dim, d, L.qkv, qkv_bias);
      } else {
        layer.linear("self_attn.q_proj", Role::AttnQ, q_dim, d, L.q, qkv_bias);
        layer.linear("self_attn.k_proj", Role::AttnK, kv_dim, d, L.k, qkv_bias);
        layer.linear("self_attn.v_proj", Role::AttnV, kv_dim, d, L.v, qkv_bias);
      }
      layer.linear("self_attn.o_proj", Role::AttnO, d, q_dim, L.o, o_bias);
      layer.norm("post_attention_layernorm", Role::MlpNorm, d, L.mlp_norm);
      if (fused) {
        layer.linear("mlp.gate_up_proj", Role::MlpGateUp, 2 * ff, d, L.gate_up, mlp_bias);
      } else {
        layer.linear("mlp.gate_proj", Role::MlpGate, ff, d, L.gate, mlp_bias);
        layer.linear("mlp.up_proj", Role::MlpUp, ff, d, L.up, mlp_bias);
      }
      layer.linear("mlp.down_proj", Role::MlpDown, d, ff, L.down, mlp_bias);
    }
    model.norm("norm", Role::FinalNorm, d, final_norm);
    // Tied checkpoints usually omit lm_head; some save a copy, which is then used as it is.
    TensorDeclarer(visit, c.low_rank, "").linear("lm_head", Role::Head, c.vocab_rows(), d, head, HasBias::No, TensorKind::Matrix,
                                     c.tie_word_embeddings ? Presence::Optional : Presence::Required);
  }
};

class Llama final : public Model {
 public:
  Llama(const ModelConfig& c, Backend& backend, const ModelOptions& options)
      : Model(c, backend, options), w_(c), s_(llama_settings(c)), a_(c, [this](int64_t width) { return activation(width); }) {
    if (s_.fused_projections)
      fused_ = activation(std::max((c.n_heads + 2 * c.n_kv_heads) * c.head_dim, 2 * c.intermediate_size));
    rope_ = RopeTables(backend, c, context_);
  }

  void visit_tensors(const TensorVisitor& visit) override { w_.visit(config_, visit); }

  void place_weights() override {
    if (s_.fused_projections) return;  // already one matrix each
    for (LlamaLayer& L : w_.layers) {
      backend_.place_adjacent({&L.q, &L.k, &L.v});
      backend_.place_adjacent({&L.gate, &L.up});
    }
  }

  const Tensor& output_head() const override { return w_.head.weight.empty() ? w_.embed : w_.head.weight; }

  void run(const Batch& batch, KvCache& cache) override {
    const auto& c = config_;
    const int64_t n = batch.rows, d = c.hidden_size;
    const float eps = float(c.norm_eps);
    Backend& be = backend_;
    if (!receive_stage_input(batch, a_.x.data())) be.gather_rows(w_.embed, batch.tokens_dev, n, a_.x.data(), Accumulate::No);
    run_layers(batch, cache, 0, c.n_layers);
    if (send_stage_output(batch, a_.x.data())) return;
    const int64_t n_logits = int64_t(batch.logit_rows.size());
    if (n_logits == 0) return;
    be.rms_norm(logit_rows(batch, a_.x.data()), vec(w_.final_norm), n_logits, d, eps, a_.h.data());
    project_to_logits(a_.h.data(), n_logits);
  }

  // Layers [first, end) over the residual stream x. Inside it, each residual add is fused with the next layer's input norm; the
  // stage's first layer norms its input itself and its last one only adds.
  void run_layers(const Batch& batch, KvCache& cache, int64_t first, int64_t end) {
    const auto& c = config_;
    const int64_t n = batch.rows, d = c.hidden_size;
    const float eps = float(c.norm_eps), scale = 1.0f / std::sqrt(float(c.head_dim));
    Backend& be = backend_;
    float *x = a_.x.data(), *h = a_.h.data(), *q = a_.q.data(), *k = a_.k.data(), *v = a_.v.data();
    float *attn = a_.attn.data(), *gate = a_.gate.data(), *up = a_.up.data();
    be.rms_norm(x, vec(w_.layers[size_t(first)].attn_norm), n, d, eps, h);
    for (int64_t l = first; l < end; ++l) {
      const LlamaLayer& L = w_.layers[size_t(l)];
      // h = attn_norm(x) here.
      project_qkv(L, h, n, q, k, v);
      const KvPools kv = cache.layer(l);
      be.rope_store_kv(q, k, v, n, c.n_heads, batch.positions_dev, rope_.cos(), rope_.sin(), batch.slots_dev, kv);
      be.attention(q, kv, attn, batch.attention, c.n_heads, {scale, 0.0f, s_.layer_windows[size_t(l)]});
      be.linear(attn, n, L.o, h);
      be.add_rms_norm(x, h, vec(L.mlp_norm), n, d, eps, h);

      project_swiglu(L, h, n, gate, up);
      be.linear(gate, n, L.down, h);
      if (l + 1 < end)
        be.add_rms_norm(x, h, vec(w_.layers[size_t(l + 1)].attn_norm), n, d, eps, h);
      else
        be.add(x, h, n * d);
    }
  }

 private:
  // q, k, v [n, h*dh], [n, kv*dh], [n, kv*dh] from h.
  void project_qkv(const LlamaLayer& L, const float* h, int64_t n, float* q, float* k, float* v) {
    if (L.qkv.weight.empty()) return backend_.linear_same_input(h, n, {{&L.q, q}, {&L.k, k}, {&L.v, v}});
    // One fused product, then its [q | k | v] row parts side by side for rope and the cache.
    const int64_t q_dim = config_.n_heads * config_.head_dim, kv_dim = config_.n_kv_heads * config_.head_dim;
    const int64_t width = q_dim + 2 * kv_dim;
    float* qkv = fused_.data();
    backend_.linear(h, n, L.qkv, qkv);
    backend_.copy_2d(qkv, width, q, q_dim, n, q_dim);
    backend_.copy_2d(qkv + q_dim, width, k, kv_dim, n, kv_dim);
    backend_.copy_2d(qkv + q_dim + kv_dim, width, v, kv_dim, n, kv_dim);
  }
  // gate = silu(h Wg^T) * (h Wu^T), [n, ff]; up is scratch.
  void project_swiglu(const LlamaLayer& L, const float* h, int64_t n, float* gate, float* up) {
    if (L.gate_up.weight.empty()) return backend_.linear_swiglu(h, n, {&L.gate, gate}, {&L.up, up});
    const int64_t ff = config_.intermediate_size;
    float* gate_up = fused_.data();
    backend_.linear(h, n, L.gate_up, gate_up);
    backend_.copy_2d(gate_up, 2 * ff, gate, ff, n, ff);
    backend_.copy_2d(gate_up + ff, 2 * ff, up, ff, n, ff);
    backend_.silu_mul(gate, up, gate, n * ff);
  }

  LlamaWeights w_;
  LlamaSettings s_;  // the family's settings, out of config_.family once
  DecoderActivations a_;
  Buffer fused_;  // Phi-3's fused products [max_rows, q+k+v or gate+up]
  RopeTables rope_;
};

// Which layers attend through a sliding window: Mistral and Phi-3 every layer (when
// sliding_window is set); Qwen2 only with use_sliding_window, from layer max_window_layers on
// (transformers' default layer_types), or as an explicit layer_types list says.
Result<std::vector<int64_t>> sliding_windows(const ConfigFields& f, const std::string& model_type, int64_t layers) {
  std::vector<int64_t> out(size_t(layers), 0);
  const bool qwen2 = model_type == "qwen2";
  BRISK_ASSIGN(use_window, f.boolean_or("use_sliding_window", !qwen2));
  if (!use_window || !f.has("sliding_window")) return out;
  BRISK_ASSIGN(window, f.integer("sliding_window"));
  BRISK_ASSIGN(types, f.strings_or_empty("layer_types"));
  BRISK_ASSIGN(first_windowed, f.integer_or("max_window_layers", qwen2 ? layers : 0));
  if (!types.empty() && int64_t(types.size()) != layers)
    return f.error("layer_types", "has " + std::to_string(types.size()) + " entries for " + std::to_string(layers) + " layers");
  for (int64_t l = 0; l < layers; ++l) {
    const bool windowed = types.empty() ? (!qwen2 || l >= first_windowed) : types[size_t(l)] == "sliding_attention";
    if (!types.empty() && !windowed && types[size_t(l)] != "full_attention")
      return f.error("layer_types", "entry '" + types[size_t(l)] + "' is neither sliding_attention nor full_attention");
    out[size_t(l)] = windowed ? window : 0;
  }
  return out;
}

constexpr ShapeKeys kLlamaShape{.layers = "num_hidden_layers", .hidden = "hidden_size", .heads = "num_attention_heads",
                                .kv_heads = "num_key_value_heads", .ffn = "intermediate_size", .head_dim = "head_dim"};

Result<ModelConfig> parse_llama(const ConfigFields& f, ModelConfig c) {
  const std::string& where = f.where();
  const ShapeKeys& k = kLlamaShape;
  BRISK_ASSIGN(vocab, f.integer("vocab_size"));
  BRISK_ASSIGN(hidden, f.integer(k.hidden));
  BRISK_ASSIGN(inter, f.integer(k.ffn));
  BRISK_ASSIGN(layers, bounded_size(f, k.layers, kMaxLayers));
  BRISK_ASSIGN(heads, f.integer(k.heads));
  BRISK_ASSIGN(kv_heads, f.integer_or(k.kv_heads, heads));
  BRISK_ASSIGN(max_pos, f.integer_or("max_position_embeddings", 2048));
  BRISK_ASSIGN(eps, f.positive_number_or("rms_norm_eps", 1e-6));
  BRISK_ASSIGN(tie, f.boolean_or("tie_word_embeddings", false));
  BRISK_ASSIGN(attn_bias, f.boolean_or("attention_bias", false));
  BRISK_ASSIGN(mlp_bias, f.boolean_or("mlp_bias", false));
  BRISK_ASSIGN(rope, parse_rope(f.json(), where));
  if (hidden % heads != 0 && !f.has(k.head_dim))
    return make_error(where + ": hidden_size " + std::to_string(hidden) + " is not divisible by num_attention_heads " + std::to_string(heads) + " and no head_dim is given");
  BRISK_ASSIGN(head_dim, f.integer_or(k.head_dim, hidden / heads));
  if (heads % kv_heads != 0)
    return make_error(where + ": num_attention_heads " + std::to_string(heads) + " is not a multiple of num_key_value_heads " + std::to_string(kv_heads));
  if (head_dim % 2 != 0) return make_error(where + ": head_dim must be even for rotary embeddings");
  BRISK_ASSIGN(act, f.string_or("hidden_act", "silu"));
  if (act != "silu" && act != "swish")
    return make_error(where + ": unsupported hidden_act '" + act + "' (llama family supports silu)");
  const bool phi3 = c.model_type == "phi3";
  // At the top level, or inside rope_parameters (transformers >= 5).
  BRISK_ASSIGN(top_rotary_fraction, f.number_or("partial_rotary_factor", 1.0));
  double rotary_fraction = top_rotary_fraction;
  if (f.has("rope_parameters") && f.json().at("rope_parameters").is_object()) {
    BRISK_ASSIGN(inner, ConfigFields(f.json().at("rope_parameters"), where + ": 'rope_parameters'")
                            .number_or("partial_rotary_factor", rotary_fraction));
    rotary_fraction = inner;
  }
  if (rotary_fraction != 1.0)
    return f.error("partial_rotary_factor", "= " + std::to_string(rotary_fraction) + ": brisk supports full rotary only");
  if (rope.type == RopeType::LongRope && int64_t(rope.short_factor.size()) != head_dim / 2)
    return make_error(where + ": longrope short_factor/long_factor have " + std::to_string(rope.short_factor.size()) +
                      " entries, expected head_dim / 2 = " + std::to_string(head_dim / 2));

  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.max_position = max_pos;
  c.norm_eps = eps;
  c.rope = rope;
  c.tie_word_embeddings = tie;
  c.qkv_bias = attn_bias || c.model_type == "qwen2";
  c.o_bias = attn_bias && c.model_type != "qwen2";
  c.mlp_bias = mlp_bias && c.model_type == "llama";
  BRISK_ASSIGN(windows, sliding_windows(f, c.model_type, layers));
  c.family = LlamaSettings{.fused_projections = phi3, .layer_windows = std::move(windows)};
  return c;
}

// A 1-D tensor that holds configuration (rope factors), decoded to fp32.
Result<std::vector<double>> config_vector(const GgufFile& f, const GgufTensorInfo& t) {
  if (t.ne.size() != 1) return make_error(f.path().string() + ": tensor '" + t.name + "' must be a vector");
  std::vector<float> values(size_t(t.numel()));
  BRISK_TRY(f.dequantize(t, values.data()));
  return std::vector<double>(values.begin(), values.end());
}

// Phi-3's LongRoPE (convert_hf_to_gguf.py, Phi3MiniModel): the short and long factors as the
// tensors rope_factors_short/long.weight (written only for longrope checkpoints), the original
// context as rope.scaling.original_context_length, the magnitude correction as
// rope.scaling.attn_factor. llama.cpp picks the factors by context as brisk does.
Status read_longrope(const GgufFile& f, const std::string& a, Json& j) {
  const GgufTensorInfo* long_t = f.find_tensor("rope_factors_long.weight");
  const GgufTensorInfo* short_t = f.find_tensor("rope_factors_short.weight");
  if (!long_t && !short_t) return ok_status();
  const std::string where = f.path().string();
  if (!long_t || !short_t)
    return make_error(where + ": tensor '" + std::string(long_t ? "rope_factors_short.weight" : "rope_factors_long.weight") +
                      "' is missing (LongRoPE needs both factor tensors)");
  BRISK_ASSIGN(long_factor, config_vector(f, *long_t));
  BRISK_ASSIGN(short_factor, config_vector(f, *short_t));
  BRISK_ASSIGN(original, f.integer(a + "rope.scaling.original_context_length"));
  BRISK_ASSIGN(attn_factor, f.optional_number(a + "rope.scaling.attn_factor"));
  Json rope = {{"rope_type", "longrope"}, {"long_factor", long_factor}, {"short_factor", short_factor},
               {"original_max_position_embeddings", original}};
  if (attn_factor) rope["attention_factor"] = *attn_factor;
  j["rope_scaling"] = std::move(rope);
  j["original_max_position_embeddings"] = original;
  return ok_status();
}

// The family's keys after "<arch>.", read by llama_gguf_config and written by llama_gguf_metadata.
constexpr const char* kRmsEpsilon = "attention.layer_norm_rms_epsilon";
constexpr const char* kRopeFreqBase = "rope.freq_base";
constexpr const char* kKeyLength = "attention.key_length";
constexpr const char* kValueLength = "attention.value_length";
constexpr const char* kRopeDimensions = "rope.dimension_count";
constexpr const char* kSlidingWindow = "attention.sliding_window";
constexpr const char* kRopeScalingType = "rope.scaling.type";
constexpr const char* kRopeScalingFactor = "rope.scaling.factor";

// llama.cpp's llama / qwen2 / phi3 metadata as config.json fields.
Result<Json> llama_gguf_config(const GgufFile& f, const GgufArchitecture& arch) {
  BRISK_ASSIGN(common, read_gguf_common(f, arch));
  const std::string a = std::string(arch.name) + ".";
  const std::string where = f.path().string();
  BRISK_ASSIGN(eps, f.number(a + kRmsEpsilon));
  BRISK_ASSIGN(theta, f.optional_number(a + kRopeFreqBase));
  BRISK_ASSIGN(key_length, f.optional_integer(a + kKeyLength));
  BRISK_ASSIGN(value_length, f.optional_integer(a + kValueLength));
  BRISK_ASSIGN(rope_dims, f.optional_integer(a + kRopeDimensions));
  const int64_t heads = common.heads;
  const int64_t head_dim = key_length.value_or(heads > 0 ? common.hidden / heads : 0);
  if (value_length && *value_length != head_dim)
    return make_error(where + ": attention.key_length and value_length differ; brisk needs equal head sizes");
  if (rope_dims && *rope_dims != head_dim)
    return make_error(where + ": metadata '" + a + kRopeDimensions + "' = " + std::to_string(*rope_dims) +
                      " rotates part of each head; brisk supports full rotary only (head size " + std::to_string(head_dim) + ")");
  Json j = common.json;
  j.update({{"hidden_size", common.hidden}, {"intermediate_size", common.ff}, {"num_hidden_layers", common.layers},
            {"num_attention_heads", heads}, {"num_key_value_heads", common.kv_heads},
            {"head_dim", head_dim}, {"max_position_embeddings", common.context}, {"rms_norm_eps", eps},
            {"rope_theta", theta.value_or(10000.0)}, {"tie_word_embeddings", !f.find_tensor("output.weight")},
            {"attention_bias", arch.model_type == "llama" && f.find_tensor("blk.0.attn_q.bias")},
            {"mlp_bias", f.find_tensor("blk.0.ffn_up.bias") != nullptr}});

  // rope_freqs.weight: Llama 3.1's rope scaling as per-frequency divisors.
  if (const GgufTensorInfo* freqs = f.find_tensor("rope_freqs.weight")) {
    BRISK_ASSIGN(factors, config_vector(f, *freqs));
    for (double x : factors)
      if (x != 1.0)
        return make_error(where + ": tensor 'rope_freqs.weight' scales rotary frequencies (Llama 3.1 style); not supported yet");
  }
  // Phi-3 writes 0 for "no window"; transformers then attends to everything.
  BRISK_ASSIGN(window, f.optional_integer(a + kSlidingWindow));
  if (window && *window > 0) j["sliding_window"] = *window;
  BRISK_TRY(read_longrope(f, a, j));
  if (j.contains("rope_scaling")) return j;

  BRISK_ASSIGN(scaling, f.optional_string(a + kRopeScalingType));
  BRISK_ASSIGN(factor, f.optional_number(a + kRopeScalingFactor));
  BRISK_ASSIGN(old_linear, f.optional_number(a + "rope.scale_linear"));  // pre-2024 files
  if (scaling == "linear" || (!scaling && old_linear && *old_linear != 1.0)) {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", factor.value_or(old_linear.value_or(1.0))}};
  } else if (scaling && *scaling != "none") {
    return make_error(where + ": metadata '" + a + kRopeScalingType + "' = '" + *scaling +
                      "' is not supported (supported: none, linear)");
  }
  return j;
}

// The inverse for llama and qwen2 (what llama_gguf_config reads back to the same config).
Status llama_gguf_metadata(const ModelConfig& c, const GgufArchitecture& arch, GgufWriter& out) {
  const std::string a = std::string(arch.name) + ".";
  if (llama_settings(c).fused_projections)
    return make_error("GGUF export of '" + c.model_type + "' (fused qkv / gate_up projections) is not supported yet");
  if (c.rope.type != RopeType::Default && c.rope.type != RopeType::Linear)
    return make_error("GGUF export: rope scaling '" + std::string(c.rope.type == RopeType::Llama3 ? "llama3" : "longrope") +
                      "' is not supported yet (llama.cpp stores it as a rope_freqs tensor brisk does not write)");
  if (arch.model_type == "llama" && c.qkv_bias != c.o_bias)
    return make_error("GGUF export: biases on q/k/v but not o cannot be said in llama GGUF metadata");
  // llama.cpp's llama and qwen2 graphs attend to every earlier position: a windowed model would
  // load there and compute something else past its window.
  for (int64_t w : llama_settings(c).layer_windows)
    if (w > 0)
      return make_error("GGUF export: sliding-window attention (window " + std::to_string(w) +
                        ") is not computed by llama.cpp's '" + std::string(arch.name) + "' architecture");
  write_gguf_common(c, arch, out);
  out.set_u32(a + kKeyLength, uint32_t(c.head_dim));
  out.set_u32(a + kValueLength, uint32_t(c.head_dim));
  out.set_u32(a + kRopeDimensions, uint32_t(c.head_dim));
  out.set_f32(a + kRopeFreqBase, float(c.rope.theta));
  out.set_f32(a + kRmsEpsilon, float(c.norm_eps));
  if (c.rope.type == RopeType::Linear) {
    out.set_string(a + kRopeScalingType, "linear");
    out.set_f32(a + kRopeScalingFactor, float(c.rope.factor));
  }
  return ok_status();
}

void select_llama_layers(ModelConfig& c, int64_t first, int64_t end) {
  std::vector<int64_t>& windows = std::any_cast<LlamaSettings&>(c.family).layer_windows;
  windows = std::vector<int64_t>(windows.begin() + first, windows.begin() + end);
}

}  // namespace

extern const Architecture kLlamaArchitecture{
    .family = "llama",
    .model_types = {"llama", "mistral", "qwen2", "phi3"},
    .shape_keys = kLlamaShape,
    .parse_config = parse_llama,
    .tensors = collect_tensor_specs<LlamaWeights>,
    .make = construct_model<Llama>,
    // qwen2's and phi3's converters keep the Hugging Face row order (llama.cpp runs them with
    // NEOX rope); llama's (Mistral's too) interleaves. phi3 keeps qkv_proj as attn_qkv and
    // gate_up_proj ([gate | up], llama.cpp's LLM_FFN_SWIGLU splits it the same way) as ffn_up.
    .gguf = {{.name = "llama", .model_type = "llama", .rotary_rows_interleaved = true,
              .config_tensors = {"rope_freqs.weight"}, .also_exports = {"mistral"}},
             {.name = "qwen2", .model_type = "qwen2", .config_tensors = {"rope_freqs.weight"}},
             {.name = "phi3", .model_type = "phi3",
              .config_tensors = {"rope_factors_long.weight", "rope_factors_short.weight"}}},
    .gguf_config = llama_gguf_config,
    .gguf_metadata = llama_gguf_metadata,
    .tensor_parallel = true,
    .select_layers = select_llama_layers,
    .attention_windows = [](const ModelConfig& c) { return llama_settings(c).layer_windows; },
};

}  // namespace brisk
