// BERT-family encoders (BertModel, BertForSequenceClassification). Post-norm blocks over
// bidirectional attention:
//   x = LN_e(word[ids] + position[pos] + token_type[0])
//   x = LN_a(x + O(Attn(x)));  x = LN_o(x + down(gelu(up(x))))
// BertModel's output rows are the last hidden states (pooling and normalizing happen in
// runtime/embedding); the classifier's one row per sequence is classifier(tanh(pooler(x[CLS]))).
// A sequence must come in one forward call from position 0: every query sees every key.
#include <any>
#include <cmath>

#include "models/gguf_model.h"
#include "models/model.h"

namespace brisk {

namespace {

struct BertSettings {
  bool classifier = false;        // BertForSequenceClassification: pooler + classifier
  std::vector<std::string> labels;  // id2label, by id (classifier)
  int64_t type_vocab = 2;           // type_vocab_size: segment embeddings (all inputs use segment 0)
};

const BertSettings& bert_settings(const ModelConfig& c) { return std::any_cast<const BertSettings&>(c.family); }

struct BertLayer {
  Linear q, k, v, o;                   // [d, d] + [d] each
  Tensor attn_ln_w, attn_ln_b;         // [d]: attention.output.LayerNorm
  Linear up, down;                     // [ff, d] + [ff], [d, ff] + [d]
  Tensor out_ln_w, out_ln_b;           // [d]: output.LayerNorm
};

struct BertWeights {
  Tensor word, position, token_type, emb_ln_w, emb_ln_b;
  std::vector<BertLayer> layers;
  Linear pooler, classifier;  // [d, d], [labels, d]; the pooler is optional on a plain BertModel

  explicit BertWeights(const ModelConfig& c) : layers(size_t(c.n_layers)) {}

  void visit(const ModelConfig& c, const TensorVisitor& visit) {
    const BertSettings& s = bert_settings(c);
    const int64_t d = c.hidden_size, ff = c.intermediate_size;
    // A classifier checkpoint keeps the encoder under "bert."; a plain BertModel has no prefix.
    const std::string base = s.classifier ? "bert." : "";
    const TensorDeclarer emb(visit, c.low_rank, base + "embeddings.");
    emb.embedding("word_embeddings", Role::TokenEmbed, c.vocab_size, d, word);
    emb.embedding("position_embeddings", Role::PositionEmbed, c.max_position, d, position);
    emb.embedding("token_type_embeddings", Role::TokenTypeEmbed, s.type_vocab, d, token_type);
    emb.norm("LayerNorm", Role::EmbedNorm, d, emb_ln_w, &emb_ln_b);
    for (int64_t i = 0; i < c.n_layers; ++i) {
      BertLayer& L = layers[size_t(i)];
      const TensorDeclarer layer(visit, c.low_rank, base + "encoder.layer." + std::to_string(i) + ".", i);
      layer.linear("attention.self.query", Role::AttnQ, d, d, L.q, HasBias::Yes);
      layer.linear("attention.self.key", Role::AttnK, d, d, L.k, HasBias::Yes);
      layer.linear("attention.self.value", Role::AttnV, d, d, L.v, HasBias::Yes);
      layer.linear("attention.output.dense", Role::AttnO, d, d, L.o, HasBias::Yes);
      layer.norm("attention.output.LayerNorm", Role::AttnPostNorm, d, L.attn_ln_w, &L.attn_ln_b);
      layer.linear("intermediate.dense", Role::MlpUp, ff, d, L.up, HasBias::Yes);
      layer.linear("output.dense", Role::MlpDown, d, ff, L.down, HasBias::Yes);
      layer.norm("output.LayerNorm", Role::MlpPostNorm, d, L.out_ln_w, &L.out_ln_b);
    }
    const Presence pooler_presence = s.classifier ? Presence::Required : Presence::Optional;
    TensorDeclarer(visit, c.low_rank, base).linear("pooler.dense", Role::Pooler, d, d, pooler, HasBias::Yes, TensorKind::Matrix,
                                       pooler_presence);
    if (s.classifier)
      TensorDeclarer(visit, c.low_rank, "").linear("classifier", Role::Classifier, int64_t(s.labels.size()), d, classifier,
                                       HasBias::Yes);
  }
};

class Bert final : public Model {
 public:
  Bert(const ModelConfig& c, Backend& backend, const ModelOptions& options)
      : Model(c, backend, options), w_(c), s_(bert_settings(c)) {
    x_ = activation(c.hidden_size);
    h_ = activation(c.hidden_size);
    q_ = activation(c.hidden_size);
    k_ = activation(c.hidden_size);
    v_ = activation(c.hidden_size);
    attn_ = activation(c.hidden_size);
    ff_ = activation(c.intermediate_size);
    pooled_ = backend.allocate(size_t(c.hidden_size));
    // Segment 0 for every row (int32 zeros, as gather_rows reads ids).
    segments_ = activation(1);
    const std::vector<float> zeros(size_t(max_rows_), 0.0f);
    backend.copy_to_device(segments_.data(), zeros.data(), zeros.size());
  }

  ModelOutput output() const override { return s_.classifier ? ModelOutput::ClassLogits : ModelOutput::HiddenStates; }
  int64_t output_width() const override {
    return s_.classifier ? int64_t(s_.labels.size()) : config_.hidden_size;
  }
  std::vector<std::string> output_labels() const override { return s_.labels; }
  bool is_encoder() const override { return true; }
  void visit_tensors(const TensorVisitor& visit) override { w_.visit(config_, visit); }
  void place_weights() override {
    for (BertLayer& L : w_.layers) backend_.place_adjacent({&L.q, &L.k, &L.v});
  }
  // No vocabulary head: the word embeddings stand in for cost accounting.
  const Tensor& output_head() const override { return w_.word; }

  void run(const Batch& batch, KvCache& cache) override {
    const auto& c = config_;
    const int64_t n = batch.rows, d = c.hidden_size, ff = c.intermediate_size;
    for (int64_t s = 0; s < batch.attention.n_seqs; ++s)
      BRISK_CHECK(batch.attention.host_seqs[s].first_pos == 0,
                  "bert: a sequence must be encoded in one forward call from position 0");
    const float eps = float(c.norm_eps);
    const AttentionParams attention{1.0f / std::sqrt(float(c.head_dim)), 0.0f, 0, AttentionMask::Bidirectional};
    Backend& be = backend_;
    float *x = x_.data(), *h = h_.data(), *q = q_.data(), *k = k_.data(), *v = v_.data();
    float *attn = attn_.data(), *ffa = ff_.data();

    be.gather_rows(w_.word, batch.tokens_dev, n, h, Accumulate::No);
    be.gather_rows(w_.token_type, reinterpret_cast<const int32_t*>(segments_.data()), n, h, Accumulate::Yes);
    be.gather_rows(w_.position, batch.positions_dev, n, h, Accumulate::Yes);
    be.layer_norm(h, vec(w_.emb_ln_w), vec(w_.emb_ln_b), n, d, eps, x);
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const BertLayer& L = w_.layers[size_t(l)];
      be.linear_same_input(x, n, {{&L.q, q}, {&L.k, k}, {&L.v, v}});
      const KvPools kv = cache.layer(l);
      be.store_kv(k, v, n, d, batch.slots_dev, kv);
      be.attention(q, kv, attn, batch.attention, c.n_heads, attention);
      be.linear(attn, n, L.o, h);
      be.add(h, x, n * d);
      be.layer_norm(h, vec(L.attn_ln_w), vec(L.attn_ln_b), n, d, eps, x);
      be.linear(x, n, L.up, ffa);
      if (c.activation == Activation::GeluErf)
        be.gelu_erf(ffa, n * ff);
      else
        be.gelu_tanh(ffa, n * ff);
      be.linear(ffa, n, L.down, h);
      be.add(h, x, n * d);
      be.layer_norm(h, vec(L.out_ln_w), vec(L.out_ln_b), n, d, eps, x);
    }
    const int64_t n_out = int64_t(batch.logit_rows.size());
    if (n_out == 0) return;
    if (!s_.classifier) {  // the last hidden states of the rows asked for
      be.copy_2d(logit_rows(batch, x), d, output_rows(), d, n_out, d);
      return;
    }
    // One row of label logits per sequence, from its [CLS] (first) row.
    BRISK_CHECK(batch.attention.n_seqs == 1 && n_out == 1, "bert classifier: one sequence per call, its last row asked for");
    be.linear(x, 1, w_.pooler, pooled_.data());
    be.soft_cap(pooled_.data(), d, 1.0f);  // tanh
    be.linear(pooled_.data(), 1, w_.classifier, output_rows());
  }

 private:
  BertWeights w_;
  BertSettings s_;
  Buffer x_, h_, q_, k_, v_, attn_, ff_, pooled_, segments_;  // activations [max_rows, width]
};

Result<ModelConfig> parse_bert(const ConfigFields& f, ModelConfig c) {
  const std::string& where = f.where();
  BRISK_ASSIGN(architectures, f.strings_or_empty("architectures"));
  const std::string arch = architectures.empty() ? "BertModel" : architectures[0];
  if (arch != "BertModel" && arch != "BertForSequenceClassification")
    return f.error("architectures", "'" + arch + "' is not supported (BertModel, BertForSequenceClassification)");
  BRISK_ASSIGN(vocab, f.integer("vocab_size"));
  BRISK_ASSIGN(hidden, f.integer("hidden_size"));
  BRISK_ASSIGN(inter, f.integer("intermediate_size"));
  BRISK_ASSIGN(layers, bounded_size(f, "num_hidden_layers", kMaxLayers));
  BRISK_ASSIGN(heads, f.integer("num_attention_heads"));
  BRISK_ASSIGN(max_pos, f.integer_or("max_position_embeddings", 512));
  BRISK_ASSIGN(types, f.integer_or("type_vocab_size", 2));
  BRISK_ASSIGN(eps, f.positive_number_or("layer_norm_eps", 1e-12));
  BRISK_ASSIGN(decoder, f.boolean_or("is_decoder", false));
  if (decoder) return f.error("is_decoder", "= true is not supported (BERT encoders only)");
  BRISK_ASSIGN(position_type, f.string_or("position_embedding_type", "absolute"));
  if (position_type != "absolute")
    return f.error("position_embedding_type", "'" + position_type + "' is not supported (absolute)");
  if (hidden % heads != 0) return make_error(where + ": hidden_size is not divisible by num_attention_heads");
  BRISK_ASSIGN(act, f.string_or("hidden_act", "gelu"));
  if (act != "gelu" && act != "gelu_new" && act != "gelu_pytorch_tanh")
    return f.error("hidden_act", "'" + act + "' is not supported (gelu, gelu_new)");

  BertSettings s;
  s.classifier = arch == "BertForSequenceClassification";
  c.activation = act == "gelu" ? Activation::GeluErf : Activation::GeluTanh;
  s.type_vocab = types;
  if (s.classifier) {
    // id2label {"0": "negative", ...}: ids 0..n-1, each named.
    const Json& json = f.json();
    auto labels = json.find("id2label");
    if (labels == json.end() || !labels->is_object() || labels->empty())
      return f.error("id2label", "is required for BertForSequenceClassification");
    s.labels.resize(labels->size());
    std::vector<bool> named(labels->size(), false);
    for (auto it = labels->begin(); it != labels->end(); ++it) {
      const std::string& key = it.key();
      char* end = nullptr;
      const long id = std::strtol(key.c_str(), &end, 10);
      const bool valid = !key.empty() && *end == '\0' && id >= 0 && size_t(id) < s.labels.size() &&
                         !named[size_t(id)] && it->is_string();
      if (!valid)
        return f.error("id2label", "must map each id 0.." + std::to_string(s.labels.size() - 1) + " once to a name");
      named[size_t(id)] = true;
      s.labels[size_t(id)] = it->get<std::string>();
    }
  }
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = heads;
  c.head_dim = hidden / heads;
  c.max_position = max_pos;
  c.norm_eps = eps;
  c.qkv_bias = c.o_bias = c.mlp_bias = true;
  c.family = std::move(s);
  return c;
}

// llama.cpp's bert metadata as config.json fields (convert_hf_to_gguf.py, BertModel; llama-model.cpp).
// The converter drops the pooler (pooler.dense) and keeps only BertForSequenceClassification's
// classifier (as cls.output): transformers' classifier runs on tanh(pooler(x[CLS])), so such a
// file cannot give its logits and is refused. Pooling (bert.pooling_type) is read by
// runtime/embedding; the hidden activation is not recorded: BERT's exact (erf) GELU.
Result<Json> bert_gguf_config(const GgufFile& f, const GgufArchitecture& arch) {
  BRISK_ASSIGN(common, read_gguf_common(f, arch));
  const std::string a = std::string(arch.name) + ".";
  const std::string where = f.path().string();
  if (f.find_tensor("cls.output.weight"))
    return make_error(where + ": tensor 'cls.output.weight': a sequence classifier; llama.cpp's converter drops BERT's "
                      "pooler, which transformers applies before it, so brisk loads only BertModel encoders from GGUF");
  BRISK_ASSIGN(eps, f.number(a + "attention.layer_norm_epsilon"));
  BRISK_ASSIGN(causal, f.optional_bool(a + "attention.causal"));
  if (causal && *causal) return make_error(where + ": metadata '" + a + "attention.causal' = true: BERT encoders are bidirectional");
  if (common.kv_heads != common.heads)
    return make_error(where + ": metadata '" + a + "attention.head_count_kv' differs from head_count (BERT has none)");
  const GgufTensorInfo* types = f.find_tensor("token_types.weight");
  if (!types || types->ne.size() != 2)
    return make_error(where + ": tensor 'token_types.weight' missing or not a matrix");
  Json j = common.json;
  j.update({{"architectures", {"BertModel"}}, {"hidden_size", common.hidden}, {"intermediate_size", common.ff},
            {"num_hidden_layers", common.layers}, {"num_attention_heads", common.heads},
            {"max_position_embeddings", common.context}, {"type_vocab_size", types->ne[1]},
            {"layer_norm_eps", eps}, {"hidden_act", "gelu"}});
  return j;
}

}  // namespace

extern const Architecture kBertArchitecture{
    .family = "bert",
    .model_types = {"bert"},
    .shape_keys = {},  // no tool writes new shapes of this family
    .parse_config = parse_bert,
    .tensors = collect_tensor_specs<BertWeights>,
    .make = construct_model<Bert>,
    // BERT's post-norms (after each residual add) have their own llama.cpp names; the rest follow
    // the role table (token_types, position_embd, token_embd_norm, attn_q/k/v, attn_output,
    // ffn_up, ffn_down).
    .gguf = {{.name = "bert", .model_type = "bert",
              .role_names = {{Role::AttnPostNorm, "attn_output_norm"}, {Role::MlpPostNorm, "layer_output_norm"}}}},
    .gguf_config = bert_gguf_config,
};

}  // namespace brisk
