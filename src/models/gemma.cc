// The Gemma family: Gemma-2 and Gemma-3 (text). A pre-norm decoder whose blocks also norm their
// outputs, with norms that scale by 1 + w, embeddings scaled by sqrt(hidden), GeGLU MLPs,
// layers alternating between a sliding window and global attention, and
//   Gemma-2: attention scores and final logits soft-capped (cap * tanh(x / cap));
//   Gemma-3: q and k normed per head before rope, local and global layers with their own rope.
//   x = embed(ids) * sqrt(d)
//   x += post_attn_norm(Attn(attn_norm(x)));  x += post_mlp_norm(down(gelu(gate) * up)(mlp_norm(x)))
//   logits = softcap(Head(norm(x)))
#include <any>
#include <cmath>
#include <optional>

#include "models/gguf_model.h"
#include "models/model.h"
#include "models/decoder_activations.h"
#include "models/rope_tables.h"

namespace brisk {

namespace {

struct GemmaSettings {
  bool qk_norm = false;                 // Gemma-3
  float attention_scale = 1.0f;         // query_pre_attn_scalar ** -0.5
  float attention_softcap = 0.0f;       // Gemma-2's attn_logit_softcapping (0: none)
  float final_softcap = 0.0f;           // final_logit_softcapping (0: none)
  std::vector<int64_t> layer_windows;   // per layer: sliding window, 0 for global layers
  RopeConfig local_rope;                // sliding layers' rope (Gemma-3: rope_local_base_freq)
};

const GemmaSettings& gemma_settings(const ModelConfig& c) { return std::any_cast<const GemmaSettings&>(c.family); }

struct GemmaLayer {
  Tensor attn_norm, attn_post_norm, mlp_norm, mlp_post_norm;  // [d], stored as w - 1
  Tensor q_norm, k_norm;                                      // [head_dim], Gemma-3
  Linear q, k, v, o;     // [h*dh, d], [kv*dh, d], [kv*dh, d], [d, h*dh]
  Linear gate, up, down;  // [ff, d], [ff, d], [d, ff]
};

struct GemmaWeights {
  Tensor embed, final_norm;
  Linear head;  // Gemma ties it to embed; a saved copy is used as it is
  std::vector<GemmaLayer> layers;

  explicit GemmaWeights(const ModelConfig& c) : layers(size_t(c.n_layers)) {}

  void visit(const ModelConfig& c, const TensorVisitor& visit) {
    const int64_t d = c.hidden_size, ff = c.intermediate_size, dh = c.head_dim;
    const int64_t q_dim = c.n_heads * dh, kv_dim = c.n_kv_heads * dh;
    const HasBias bias{c.qkv_bias};
    const TensorDeclarer model(visit, c.low_rank, "model.");
    model.embedding("embed_tokens", Role::TokenEmbed, c.vocab_rows(), d, embed);
    for (int64_t i = 0; i < c.n_layers; ++i) {
      GemmaLayer& L = layers[size_t(i)];
      const TensorDeclarer layer(visit, c.low_rank, "model.layers." + std::to_string(i) + ".", i);
      layer.norm_plus_one("input_layernorm", Role::AttnNorm, d, L.attn_norm);
      layer.linear("self_attn.q_proj", Role::AttnQ, q_dim, d, L.q, bias);
      layer.linear("self_attn.k_proj", Role::AttnK, kv_dim, d, L.k, bias);
      layer.linear("self_attn.v_proj", Role::AttnV, kv_dim, d, L.v, bias);
      if (gemma_settings(c).qk_norm) {
        layer.norm_plus_one("self_attn.q_norm", Role::AttnQNorm, dh, L.q_norm);
        layer.norm_plus_one("self_attn.k_norm", Role::AttnKNorm, dh, L.k_norm);
      }
      layer.linear("self_attn.o_proj", Role::AttnO, d, q_dim, L.o, bias);
      layer.norm_plus_one("post_attention_layernorm", Role::AttnPostNorm, d, L.attn_post_norm);
      layer.norm_plus_one("pre_feedforward_layernorm", Role::MlpNorm, d, L.mlp_norm);
      layer.linear("mlp.gate_proj", Role::MlpGate, ff, d, L.gate, HasBias::No);
      layer.linear("mlp.up_proj", Role::MlpUp, ff, d, L.up, HasBias::No);
      layer.linear("mlp.down_proj", Role::MlpDown, d, ff, L.down, HasBias::No);
      layer.norm_plus_one("post_feedforward_layernorm", Role::MlpPostNorm, d, L.mlp_post_norm);
    }
    model.norm_plus_one("norm", Role::FinalNorm, d, final_norm);
    TensorDeclarer(visit, c.low_rank, "").linear("lm_head", Role::Head, c.vocab_rows(), d, head, HasBias::No, TensorKind::Matrix,
                                     Presence::Optional);
  }
};

class Gemma final : public Model {
 public:
  Gemma(const ModelConfig& c, Backend& backend, const ModelOptions& options)
      : Model(c, backend, options), w_(c), s_(gemma_settings(c)), a_(c, [this](int64_t width) { return activation(width); }) {
    global_rope_ = RopeTables(backend, c.rope, c.head_dim, context_);
    local_rope_ = RopeTables(backend, s_.local_rope, c.head_dim, context_);
  }

  void visit_tensors(const TensorVisitor& visit) override { w_.visit(config_, visit); }

  void place_weights() override {
    for (GemmaLayer& L : w_.layers) {
      backend_.place_adjacent({&L.q, &L.k, &L.v});
      backend_.place_adjacent({&L.gate, &L.up});
    }
  }

  const Tensor& output_head() const override { return w_.head.weight.empty() ? w_.embed : w_.head.weight; }

  void run(const Batch& batch, KvCache& cache) override {
    const auto& c = config_;
    const int64_t n = batch.rows, d = c.hidden_size, ff = c.intermediate_size, dh = c.head_dim;
    const float eps = float(c.norm_eps);
    Backend& be = backend_;
    float *x = a_.x.data(), *h = a_.h.data(), *q = a_.q.data(), *k = a_.k.data(), *v = a_.v.data();
    float *attn = a_.attn.data(), *gate = a_.gate.data(), *up = a_.up.data();

    be.gather_rows(w_.embed, batch.tokens_dev, n, x, Accumulate::No);
    // transformers multiplies by sqrt(hidden) rounded to the activations' dtype (fp32 here).
    be.scale(x, n * d, float(std::sqrt(double(d))));
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const GemmaLayer& L = w_.layers[size_t(l)];
      const int64_t window = s_.layer_windows[size_t(l)];
      be.rms_norm(x, vec(L.attn_norm), n, d, eps, h);
      be.linear_same_input(h, n, {{&L.q, q}, {&L.k, k}, {&L.v, v}});
      if (s_.qk_norm) {  // per head, before rope
        be.rms_norm(q, vec(L.q_norm), n * c.n_heads, dh, eps, q);
        be.rms_norm(k, vec(L.k_norm), n * c.n_kv_heads, dh, eps, k);
      }
      const RopeTables& rope = window > 0 ? local_rope_ : global_rope_;
      const KvPools kv = cache.layer(l);
      be.rope_store_kv(q, k, v, n, c.n_heads, batch.positions_dev, rope.cos(), rope.sin(), batch.slots_dev, kv);
      be.attention(q, kv, attn, batch.attention, c.n_heads, {s_.attention_scale, s_.attention_softcap, window});
      be.linear(attn, n, L.o, h);
      be.rms_norm(h, vec(L.attn_post_norm), n, d, eps, h);
      be.add(x, h, n * d);

      be.rms_norm(x, vec(L.mlp_norm), n, d, eps, h);
      be.linear_same_input(h, n, {{&L.gate, gate}, {&L.up, up}});
      be.gelu_tanh(gate, n * ff);  // GeGLU: gelu(gate) * up
      be.mul(gate, up, n * ff);
      be.linear(gate, n, L.down, h);
      be.rms_norm(h, vec(L.mlp_post_norm), n, d, eps, h);
      be.add(x, h, n * d);
    }
    const int64_t n_logits = int64_t(batch.logit_rows.size());
    if (n_logits == 0) return;
    be.rms_norm(logit_rows(batch, x), vec(w_.final_norm), n_logits, d, eps, h);
    float* logits = project_to_logits(h, n_logits);
    if (logits && s_.final_softcap > 0) be.soft_cap(logits, n_logits * c.vocab_size, s_.final_softcap);
  }

 private:
  GemmaWeights w_;
  GemmaSettings s_;
  DecoderActivations a_;
  RopeTables global_rope_, local_rope_;  // of the global and the sliding layers
};

// Gemma-3 keeps a rope per layer type: {"full_attention": {...}, "sliding_attention": {...}} in
// rope_parameters (transformers >= 5), or rope_theta / rope_scaling for the global layers and
// rope_local_base_freq for the sliding ones (older configs).
Status parse_gemma_ropes(const ConfigFields& f, RopeConfig& global, RopeConfig& local) {
  const Json& json = f.json();
  auto per_type = json.find("rope_parameters");
  if (per_type != json.end() && per_type->is_object() && per_type->contains("full_attention")) {
    for (const auto& [key, rope] : {std::pair<const char*, RopeConfig*>{"full_attention", &global},
                                    {"sliding_attention", &local}}) {
      if (!per_type->contains(key)) return f.error("rope_parameters", std::string("has no '") + key + "' entry");
      BRISK_ASSIGN(parsed, parse_rope(Json{{"rope_parameters", per_type->at(key)}},
                                      f.where() + ": 'rope_parameters." + key + "'"));
      *rope = parsed;
    }
    return ok_status();
  }
  BRISK_ASSIGN(parsed, parse_rope(json, f.where()));
  global = parsed;
  BRISK_ASSIGN(local_theta, f.number_or("rope_local_base_freq", global.theta));
  local = RopeConfig{};
  local.theta = local_theta;
  return ok_status();
}

Result<ModelConfig> parse_gemma(const ConfigFields& f, ModelConfig c) {
  const std::string& where = f.where();
  const bool gemma3 = c.model_type == "gemma3_text";
  BRISK_ASSIGN(vocab, f.integer("vocab_size"));
  BRISK_ASSIGN(hidden, f.integer("hidden_size"));
  BRISK_ASSIGN(inter, f.integer("intermediate_size"));
  BRISK_ASSIGN(layers, bounded_size(f, "num_hidden_layers", kMaxLayers));
  BRISK_ASSIGN(heads, f.integer("num_attention_heads"));
  BRISK_ASSIGN(kv_heads, f.integer_or("num_key_value_heads", heads));
  BRISK_ASSIGN(head_dim, f.integer_or("head_dim", 256));
  BRISK_ASSIGN(max_pos, f.integer_or("max_position_embeddings", 8192));
  BRISK_ASSIGN(eps, f.positive_number_or("rms_norm_eps", 1e-6));
  BRISK_ASSIGN(tie, f.boolean_or("tie_word_embeddings", true));
  BRISK_ASSIGN(attn_bias, f.boolean_or("attention_bias", false));
  BRISK_ASSIGN(query_scalar, f.number_or("query_pre_attn_scalar", double(head_dim)));
  BRISK_ASSIGN(attn_cap, f.optional_number("attn_logit_softcapping"));
  BRISK_ASSIGN(final_cap, f.optional_number("final_logit_softcapping"));
  BRISK_ASSIGN(bidirectional, f.boolean_or("use_bidirectional_attention", false));
  if (bidirectional) return f.error("use_bidirectional_attention", "= true is not supported (decoder models only)");
  if (heads % kv_heads != 0)
    return make_error(where + ": num_attention_heads " + std::to_string(heads) +
                      " is not a multiple of num_key_value_heads " + std::to_string(kv_heads));
  if (head_dim % 2 != 0) return make_error(where + ": head_dim must be even for rotary embeddings");
  BRISK_ASSIGN(old_act, f.string_or("hidden_act", "gelu_pytorch_tanh"));
  BRISK_ASSIGN(act, f.string_or("hidden_activation", old_act));
  if (act != "gelu_pytorch_tanh" && act != "gelu_new")
    return make_error(where + ": unsupported hidden_activation '" + act + "' (gemma supports gelu_pytorch_tanh)");
  if (!(query_scalar > 0)) return f.error("query_pre_attn_scalar", "must be positive");
  for (const auto& [key, cap] : {std::pair{"attn_logit_softcapping", attn_cap}, {"final_logit_softcapping", final_cap}})
    if (cap && !(*cap > 0)) return f.error(key, "must be positive or null");

  GemmaSettings s;
  s.qk_norm = gemma3;
  s.attention_scale = float(1.0 / std::sqrt(query_scalar));
  s.attention_softcap = float(attn_cap.value_or(0.0));
  s.final_softcap = float(final_cap.value_or(0.0));
  // Window per layer from layer_types; without them, Gemma-2 alternates (sliding first) and
  // Gemma-3 puts a global layer after every five sliding ones (transformers' defaults).
  BRISK_ASSIGN(window, f.integer_or("sliding_window", 4096));
  BRISK_ASSIGN(types, f.strings_or_empty("layer_types"));
  BRISK_ASSIGN(old_pattern, f.integer_or("_sliding_window_pattern", 6));
  BRISK_ASSIGN(pattern, f.integer_or("sliding_window_pattern", old_pattern));
  if (!types.empty() && int64_t(types.size()) != layers)
    return f.error("layer_types", "has " + std::to_string(types.size()) + " entries for " + std::to_string(layers) + " layers");
  for (int64_t l = 0; l < layers; ++l) {
    bool sliding = gemma3 ? (l + 1) % pattern != 0 : l % 2 == 0;
    if (!types.empty()) {
      const std::string& t = types[size_t(l)];
      if (t != "sliding_attention" && t != "full_attention")
        return f.error("layer_types", "entry '" + t + "' is neither sliding_attention nor full_attention");
      sliding = t == "sliding_attention";
    }
    s.layer_windows.push_back(sliding ? window : 0);
  }
  if (gemma3) {
    BRISK_TRY(parse_gemma_ropes(f, c.rope, s.local_rope));
  } else {
    BRISK_ASSIGN(rope, parse_rope(f.json(), where));
    c.rope = rope;
    s.local_rope = rope;
  }

  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.max_position = max_pos;
  c.norm_eps = eps;
  c.activation = Activation::GeluTanh;
  c.tie_word_embeddings = tie;
  c.qkv_bias = c.o_bias = attn_bias;
  c.family = std::move(s);
  return c;
}

// Which layers attend through the window in a GGUF file. llama.cpp (llama-model.cpp, load_hparams
// for GEMMA2 / GEMMA3) uses a period: layer l slides unless l % period == period - 1 (gemma2: 2,
// gemma3: 6, or {arch}.attention.sliding_window_pattern as an integer); other architectures
// write that key as one bool per layer, which is read too.
Result<Json> gguf_layer_types(const GgufFile& f, const std::string& a, int64_t layers, int64_t default_period) {
  int64_t period = default_period;
  std::vector<bool> sliding(static_cast<size_t>(layers));
  const std::string key = a + "attention.sliding_window_pattern";
  const GgufValue* pattern = f.find(key);
  if (pattern && pattern->type == GgufType::Array) {
    if (int64_t(pattern->integers.size()) != layers || pattern->element_type != GgufType::Bool)
      return make_error(f.path().string() + ": metadata '" + key + "' must be one bool per layer (" +
                        std::to_string(layers) + ")");
    for (int64_t l = 0; l < layers; ++l) sliding[size_t(l)] = pattern->integers[size_t(l)] != 0;
  } else {
    BRISK_ASSIGN(given, f.optional_integer(key));
    period = given.value_or(default_period);
    if (period < 1) return make_error(f.path().string() + ": metadata '" + key + "' must be at least 1");
    for (int64_t l = 0; l < layers; ++l) sliding[size_t(l)] = l % period < period - 1;
  }
  Json types = Json::array();
  for (bool s : sliding) types.push_back(s ? "sliding_attention" : "full_attention");
  return types;
}

// llama.cpp's gemma2 / gemma3 metadata as config.json fields (convert_hf_to_gguf.py, Gemma2Model
// and Gemma3Model; llama-model.cpp, load_hparams). Norms come as 1 + w (norms_hold_offset below).
Result<Json> gemma_gguf_config(const GgufFile& f, const GgufArchitecture& arch) {
  BRISK_ASSIGN(common, read_gguf_common(f, arch));
  const std::string a = std::string(arch.name) + ".";
  const std::string where = f.path().string();
  const bool gemma3 = arch.model_type == "gemma3_text";
  BRISK_ASSIGN(eps, f.number(a + "attention.layer_norm_rms_epsilon"));
  BRISK_ASSIGN(key_length, f.optional_integer(a + "attention.key_length"));
  BRISK_ASSIGN(value_length, f.optional_integer(a + "attention.value_length"));
  const int64_t head_dim = key_length.value_or(common.heads > 0 ? common.hidden / common.heads : 0);
  if (value_length && *value_length != head_dim)
    return make_error(where + ": attention.key_length and value_length differ; brisk needs equal head sizes");
  BRISK_ASSIGN(rope_dims, f.optional_integer(a + "rope.dimension_count"));
  if (rope_dims && *rope_dims != head_dim)
    return make_error(where + ": metadata '" + a + "rope.dimension_count' = " + std::to_string(*rope_dims) +
                      " rotates part of each head; brisk supports full rotary only");
  Json j = common.json;
  j.update({{"hidden_size", common.hidden}, {"intermediate_size", common.ff}, {"num_hidden_layers", common.layers},
            {"num_attention_heads", common.heads}, {"num_key_value_heads", common.kv_heads},
            {"head_dim", head_dim}, {"max_position_embeddings", common.context}, {"rms_norm_eps", eps},
            {"tie_word_embeddings", !f.find_tensor("output.weight")}});

  // The query scale: llama.cpp derives it (no key): 1/sqrt(hidden / heads) for the 27B models
  // (recognized by their layer count: Gemma-2 46, Gemma-3 62), 1/sqrt(head_dim) otherwise. A
  // file may state it as {arch}.attention.scale (the key other llama.cpp architectures use).
  BRISK_ASSIGN(scale, f.optional_number(a + "attention.scale"));
  if (scale && !(*scale > 0)) return make_error(where + ": metadata '" + a + "attention.scale' must be positive");
  const bool size_27b = common.layers == (gemma3 ? 62 : 46);
  j["query_pre_attn_scalar"] = scale ? 1.0 / (*scale * *scale)
                                     : double(size_27b && common.heads > 0 ? common.hidden / common.heads : head_dim);

  // Soft-caps. Gemma-2: llama.cpp (and transformers) default to 50 / 30 when absent; brisk's
  // writer stores 0 for a checkpoint without one (llama.cpp's converter cannot express that).
  // Gemma-3 has no attention cap and a final one only when the file says so.
  BRISK_ASSIGN(attn_cap, f.optional_number(a + "attn_logit_softcapping"));
  BRISK_ASSIGN(final_cap, f.optional_number(a + "final_logit_softcapping"));
  const auto cap = [](std::optional<double> v, double absent) -> Json {
    const double x = v.value_or(absent);
    return x > 0 ? Json(x) : Json(nullptr);
  };
  j["attn_logit_softcapping"] = gemma3 ? Json(nullptr) : cap(attn_cap, 50.0);
  j["final_logit_softcapping"] = cap(final_cap, gemma3 ? 0.0 : 30.0);

  // Windows: Gemma-2 defaults to 4096; a Gemma-3 file without a window has no sliding layers.
  BRISK_ASSIGN(window, f.optional_integer(a + "attention.sliding_window"));
  const bool windowed = window && *window > 0;
  if (gemma3 && !windowed) {
    j["layer_types"] = Json(std::vector<std::string>(size_t(common.layers), "full_attention"));
  } else {
    BRISK_ASSIGN(types, gguf_layer_types(f, a, common.layers, gemma3 ? 6 : 2));
    j["layer_types"] = std::move(types);
  }
  j["sliding_window"] = windowed ? *window : 4096;

  // Rope: rope.freq_base for global layers; Gemma-3's sliding layers use rope.freq_base_swa
  // (written by newer converters from rope_parameters.sliding_attention), else 10000, the value
  // llama.cpp fixed for them and every released Gemma-3 uses. Linear scaling applies to the
  // global layers only, as in transformers.
  BRISK_ASSIGN(theta, f.optional_number(a + "rope.freq_base"));
  Json global = {{"rope_type", "default"}, {"rope_theta", theta.value_or(10000.0)}};
  BRISK_ASSIGN(scaling, f.optional_string(a + "rope.scaling.type"));
  BRISK_ASSIGN(factor, f.optional_number(a + "rope.scaling.factor"));
  if (scaling == "linear") {
    global = {{"rope_type", "linear"}, {"rope_theta", theta.value_or(10000.0)}, {"factor", factor.value_or(1.0)}};
  } else if (scaling && *scaling != "none") {
    return make_error(where + ": metadata '" + a + "rope.scaling.type' = '" + *scaling +
                      "' is not supported (supported: none, linear)");
  }
  if (gemma3) {
    BRISK_ASSIGN(local_theta, f.optional_number(a + "rope.freq_base_swa"));
    j["rope_parameters"] = {{"full_attention", global},
                            {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", local_theta.value_or(10000.0)}}}};
  } else {
    j["rope_parameters"] = global;
  }
  return j;
}

}  // namespace

extern const Architecture kGemmaArchitecture{
    .family = "gemma",
    .model_types = {"gemma2", "gemma3_text"},
    .shape_keys = {},  // no tool writes new shapes of this family
    .parse_config = parse_gemma,
    .tensors = collect_tensor_specs<GemmaWeights>,
    .make = construct_model<Gemma>,
    // llama.cpp's converter stores every *norm.weight as 1 + w (Gemma2Model / Gemma3Model
    // modify_tensors) and keeps q/k rows in Hugging Face's order (NEOX rope); lm_head is dropped
    // (tied). post_attention_layernorm is post_attention_norm, pre_feedforward_layernorm ffn_norm,
    // post_feedforward_layernorm post_ffw_norm: the role table's names.
    .gguf = {{.name = "gemma2", .model_type = "gemma2", .norms_hold_offset = true},
             {.name = "gemma3", .model_type = "gemma3_text", .norms_hold_offset = true}},
    .gguf_config = gemma_gguf_config,
    // Every width comes from the config (q/k/v from heads x head_dim); the post-norms of o and
    // down see the whole products (all-reduced inside the product), the embedding scale and the
    // logits' soft cap the whole rows.
    .tensor_parallel = true,
};

}  // namespace brisk
