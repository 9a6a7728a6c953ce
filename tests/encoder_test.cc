// BERT encoders end to end on a tiny random checkpoint written from the family's own tensor list:
// brisk's embeddings (pooled, normalized) and classifier logits against a plain scalar forward in
// this file (post-norm blocks, bidirectional softmax attention, erf GELU, tanh pooler), plus the
// sentence-transformers pooling config and the errors. transformers' own numbers come from the
// golden fixture (tests/fixtures/golden/bert*) when it is present.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "backends/cpu/cpu_backend.h"
#include "bert_golden.h"
#include "formats/safetensors.h"
#include "golden_fixture.h"
#include "runtime/embedding.h"

namespace brisk {
namespace {

namespace fs = std::filesystem;
using Weights = std::map<std::string, std::vector<float>>;

const std::vector<std::string> kVocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "state",
                                         "of",    "union", "is",    "strong", ".",     "we",  "people"};

Json wordpiece_tokenizer() {
  Json vocab = Json::object();
  for (size_t id = 0; id < kVocab.size(); ++id) vocab[kVocab[id]] = id;
  Json added = Json::array();
  for (int id = 0; id < 5; ++id)
    added.push_back({{"id", id}, {"content", kVocab[size_t(id)]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  const Json cls = {{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}};
  const Json sep = {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 0}}}};
  const Json seq = {{"Sequence", {{"id", "A"}, {"type_id", 0}}}};
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", {{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", true},
                          {"strip_accents", nullptr}, {"lowercase", true}}},
          {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
          {"post_processor", {{"type", "TemplateProcessing"}, {"single", {cls, seq, sep}},
                              {"special_tokens", {{"[CLS]", {{"id", "[CLS]"}, {"ids", {2}}, {"tokens", {"[CLS]"}}}},
                                                  {"[SEP]", {{"id", "[SEP]"}, {"ids", {3}}, {"tokens", {"[SEP]"}}}}}}}},
          {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
          {"model", {{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"continuing_subword_prefix", "##"},
                     {"max_input_chars_per_word", 100}, {"vocab", vocab}}}};
}

constexpr int64_t kHidden = 16, kHeads = 2, kLayers = 2, kFf = 24, kPositions = 32;

// A folder with random fp32 weights for every tensor the bert declaration lists.
struct TinyBert {
  fs::path dir;
  Weights w;
  bool classifier;

  explicit TinyBert(bool classifier_) : classifier(classifier_) {
    dir = fs::temp_directory_path() / ("brisk-bert-" + std::to_string(::getpid()) + (classifier ? "-cls" : ""));
    fs::remove_all(dir);
    fs::create_directories(dir);
    Json config = {{"model_type", "bert"}, {"vocab_size", kVocab.size()}, {"hidden_size", kHidden},
                   {"num_hidden_layers", kLayers}, {"num_attention_heads", kHeads}, {"intermediate_size", kFf},
                   {"max_position_embeddings", kPositions}, {"type_vocab_size", 2}, {"layer_norm_eps", 1e-12},
                   {"hidden_act", "gelu"}};
    if (classifier) {
      config["architectures"] = {"BertForSequenceClassification"};
      config["id2label"] = {{"0", "negative"}, {"1", "neutral"}, {"2", "positive"}};
    }
    std::ofstream(dir / "config.json") << config.dump();
    std::ofstream(dir / "tokenizer.json") << wordpiece_tokenizer().dump();
    auto parsed = parse_model_config(config, "config.json");
    EXPECT_TRUE(parsed.ok()) << parsed.error().message;
    std::mt19937 rng(classifier ? 31 : 30);
    std::normal_distribution<float> normal;
    std::vector<NamedTensor> tensors;
    for (const TensorSpec& s : parsed->arch->tensors(*parsed)) {
      int64_t n = 1;
      for (int64_t d : s.shape) n *= d;
      std::vector<float>& v = w[s.name];
      v.resize(size_t(n));
      const bool gain = s.kind == TensorKind::Vector && s.part == Part::Weight;
      for (float& x : v) x = gain ? 1.0f + 0.1f * normal(rng) : 0.3f * normal(rng);
    }
    for (auto& [name, v] : w) {
      std::vector<int64_t> shape;
      for (const TensorSpec& s : parsed->arch->tensors(*parsed))
        if (s.name == name) shape = s.shape;
      tensors.push_back({name, Tensor{v.data(), DType::F32, shape}});
    }
    EXPECT_TRUE(write_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}}).ok());
  }
  ~TinyBert() { fs::remove_all(dir); }

  const std::vector<float>& at(const std::string& name) const { return w.at((classifier ? "bert." : "") + name); }
};

// y[m, out] = x[m, in] W^T + b.
std::vector<float> dense(const std::vector<float>& x, int64_t m, const std::vector<float>& weight,
                         const std::vector<float>& bias) {
  const int64_t out = int64_t(bias.size()), in = int64_t(weight.size()) / out;
  std::vector<float> y(size_t(m * out));
  for (int64_t r = 0; r < m; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double acc = bias[size_t(o)];
      for (int64_t i = 0; i < in; ++i) acc += double(x[size_t(r * in + i)]) * weight[size_t(o * in + i)];
      y[size_t(r * out + o)] = float(acc);
    }
  return y;
}

void layer_norm(std::vector<float>& x, int64_t d, const std::vector<float>& g, const std::vector<float>& b) {
  for (size_t r = 0; r < x.size() / size_t(d); ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < d; ++i) mean += x[r * d + i];
    mean /= double(d);
    for (int64_t i = 0; i < d; ++i) var += (x[r * d + i] - mean) * (x[r * d + i] - mean);
    const double inv = 1.0 / std::sqrt(var / double(d) + 1e-12);
    for (int64_t i = 0; i < d; ++i) x[r * d + i] = float((x[r * d + i] - mean) * inv * g[i] + b[i]);
  }
}

// The last hidden states [n, hidden], as BertModel computes them.
std::vector<float> reference_hidden(const TinyBert& m, const std::vector<int32_t>& ids) {
  const int64_t n = int64_t(ids.size()), d = kHidden, dh = d / kHeads;
  std::vector<float> x(size_t(n * d));
  const auto &word = m.at("embeddings.word_embeddings.weight"), &pos = m.at("embeddings.position_embeddings.weight"),
             &type = m.at("embeddings.token_type_embeddings.weight");
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < d; ++i)
      x[size_t(r * d + i)] = word[size_t(ids[size_t(r)] * d + i)] + type[size_t(i)] + pos[size_t(r * d + i)];
  layer_norm(x, d, m.at("embeddings.LayerNorm.weight"), m.at("embeddings.LayerNorm.bias"));
  for (int64_t l = 0; l < kLayers; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    auto lin = [&](const std::vector<float>& in, int64_t rows, const std::string& name) {
      return dense(in, rows, m.at(p + name + ".weight"), m.at(p + name + ".bias"));
    };
    const auto q = lin(x, n, "attention.self.query"), k = lin(x, n, "attention.self.key"),
               v = lin(x, n, "attention.self.value");
    std::vector<float> ctx(size_t(n * d));
    for (int64_t h = 0; h < kHeads; ++h)
      for (int64_t i = 0; i < n; ++i) {
        std::vector<double> s(static_cast<size_t>(n));
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < n; ++j) {  // every key: bidirectional
          double dot = 0;
          for (int64_t e = 0; e < dh; ++e) dot += double(q[size_t(i * d + h * dh + e)]) * k[size_t(j * d + h * dh + e)];
          s[size_t(j)] = dot / std::sqrt(double(dh));
          mx = std::max(mx, s[size_t(j)]);
        }
        for (double& z : s) sum += (z = std::exp(z - mx));
        for (int64_t e = 0; e < dh; ++e) {
          double acc = 0;
          for (int64_t j = 0; j < n; ++j) acc += s[size_t(j)] * v[size_t(j * d + h * dh + e)];
          ctx[size_t(i * d + h * dh + e)] = float(acc / sum);
        }
      }
    std::vector<float> a = lin(ctx, n, "attention.output.dense");
    for (size_t i = 0; i < a.size(); ++i) a[i] += x[i];
    layer_norm(a, d, m.at(p + "attention.output.LayerNorm.weight"), m.at(p + "attention.output.LayerNorm.bias"));
    std::vector<float> f = lin(a, n, "intermediate.dense");
    for (float& z : f) z = float(0.5 * z * (1.0 + std::erf(z / std::sqrt(2.0))));
    x = lin(f, n, "output.dense");
    for (size_t i = 0; i < x.size(); ++i) x[i] += a[i];
    layer_norm(x, d, m.at(p + "output.LayerNorm.weight"), m.at(p + "output.LayerNorm.bias"));
  }
  return x;
}

std::unique_ptr<Engine> open_engine(const fs::path& dir) {
  EngineOptions options;
  options.model_dir = dir;
  options.backend.threads = 2;
  auto engine = Engine::open(options);
  EXPECT_TRUE(engine.ok()) << engine.error().message;
  return engine.ok() ? std::move(engine.value()) : nullptr;
}

TEST(Bert, EmbeddingsMatchAScalarForward) {
  TinyBert m(false);
  auto engine = open_engine(m.dir);
  ASSERT_TRUE(engine);
  auto ids = encoder_tokens(*engine, "The state of the Union is strong.");
  ASSERT_TRUE(ids.ok()) << ids.error().message;
  EXPECT_EQ(*ids, (std::vector<int32_t>{2, 5, 6, 7, 5, 8, 9, 10, 11, 3}));
  const std::vector<float> hidden = reference_hidden(m, *ids);
  const int64_t n = int64_t(ids->size());
  for (Pooling pooling : {Pooling::Mean, Pooling::Cls, Pooling::Last})
    for (bool normalize : {false, true}) {
      auto e = embed(*engine, *ids, {pooling, normalize});
      ASSERT_TRUE(e.ok()) << e.error().message;
      std::vector<double> want(size_t(kHidden), 0.0);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t i = 0; i < kHidden; ++i) {
          const bool take = pooling == Pooling::Mean || (pooling == Pooling::Cls ? r == 0 : r == n - 1);
          if (take) want[size_t(i)] += hidden[size_t(r * kHidden + i)] / (pooling == Pooling::Mean ? double(n) : 1.0);
        }
      double norm = 0;
      for (double v : want) norm += v * v;
      for (int64_t i = 0; i < kHidden; ++i) {
        const double expected = normalize ? want[size_t(i)] / std::sqrt(norm) : want[size_t(i)];
        EXPECT_NEAR(e->vector[size_t(i)], expected, 1e-5) << pooling_name(pooling) << " normalize=" << normalize << " " << i;
      }
    }
  // An encoder does not generate, and a decoder's /v1/embeddings path refuses the other way.
  GenerateRequest request;
  request.prompt = "the state";
  EXPECT_FALSE(engine->generate(request).ok());
  EXPECT_FALSE(classify(*engine, *ids).ok());
}

TEST(Bert, ClassifierMatchesAScalarForward) {
  TinyBert m(true);
  auto engine = open_engine(m.dir);
  ASSERT_TRUE(engine);
  auto ids = encoder_tokens(*engine, "we the people");
  ASSERT_TRUE(ids.ok()) << ids.error().message;
  const std::vector<float> hidden = reference_hidden(m, *ids);
  const std::vector<float> cls(hidden.begin(), hidden.begin() + kHidden);
  std::vector<float> pooled = dense(cls, 1, m.at("pooler.dense.weight"), m.at("pooler.dense.bias"));
  for (float& z : pooled) z = std::tanh(z);
  const std::vector<float> want = dense(pooled, 1, m.w.at("classifier.weight"), m.w.at("classifier.bias"));
  auto c = classify(*engine, *ids);
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_EQ(c->logits.size(), 3u);
  EXPECT_EQ(c->labels, (std::vector<std::string>{"negative", "neutral", "positive"}));
  double total = 0;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(c->logits[i], want[i], 1e-5);
    total += c->probabilities[i];
  }
  EXPECT_NEAR(total, 1.0, 1e-6);
}

TEST(Bert, MatchesTransformersAndSentenceTransformers) { bert_golden::check_bert_golden("cpu"); }

TEST(Bert, PoolingConfigAndErrors) {
  const fs::path dir = fs::temp_directory_path() / ("brisk-pooling-" + std::to_string(::getpid()));
  fs::create_directories(dir / "1_Pooling");
  std::ofstream(dir / "modules.json") << R"([{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
    {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
    {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}])";
  std::ofstream(dir / "1_Pooling/config.json") << R"({"word_embedding_dimension": 16, "pooling_mode_cls_token": true,
    "pooling_mode_mean_tokens": false})";
  auto p = read_pooling_config(dir);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->pooling, Pooling::Cls);
  EXPECT_TRUE(p->normalize);
  std::ofstream(dir / "1_Pooling/config.json") << R"({"pooling_mode_max_tokens": true})";
  p = read_pooling_config(dir);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("pooling_mode_max_tokens"), std::string::npos) << p.error().message;
  // sentence-transformers 5 names the mode instead ("pooling_mode": "mean"); a name or a list of one.
  std::ofstream(dir / "1_Pooling/config.json") << R"({"pooling_mode": "lasttoken", "include_prompt": true})";
  p = read_pooling_config(dir);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->pooling, Pooling::Last);
  std::ofstream(dir / "1_Pooling/config.json") << R"({"pooling_mode": ["cls"]})";
  p = read_pooling_config(dir);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->pooling, Pooling::Cls);
  for (const char* config : {R"({"pooling_mode": "max"})", R"({"pooling_mode": 3})", R"({"pooling_mode": ["mean", "cls"]})",
                             R"({"pooling_mode": "mean", "pooling_mode_cls_token": true})", R"({})"}) {
    std::ofstream(dir / "1_Pooling/config.json") << config;
    p = read_pooling_config(dir);
    ASSERT_FALSE(p.ok()) << config;
    EXPECT_NE(p.error().message.find("1_Pooling"), std::string::npos) << p.error().message;
  }
  // Hostile files: truncated, the wrong shape, a module folder without its config.
  for (const char* modules : {R"([{"type": "sentence_transformers.models.Pool)", R"({"type": "Pooling"})",
                              R"([{"type": "Pooling", "path": "missing"}])"}) {
    std::ofstream(dir / "modules.json") << modules;
    p = read_pooling_config(dir);
    ASSERT_FALSE(p.ok()) << modules;
    EXPECT_NE(p.error().message.find(dir.string()), std::string::npos) << p.error().message;
  }
  fs::remove_all(dir);

  auto bad = parse_model_config(Json{{"model_type", "bert"}, {"architectures", {"BertForMaskedLM"}}, {"vocab_size", 10},
                                     {"hidden_size", 16}, {"num_hidden_layers", 1}, {"num_attention_heads", 2},
                                     {"intermediate_size", 8}},
                                "config.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("BertForMaskedLM"), std::string::npos) << bad.error().message;

  TinyBert m(false);
  auto engine = open_engine(m.dir);
  ASSERT_TRUE(engine);
  std::string long_text;
  for (int i = 0; i < 40; ++i) long_text += "the ";
  auto too_long = encoder_tokens(*engine, long_text);
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.error().message.find("context_length_exceeded"), std::string::npos);
}

// A decoder opened for hidden states outputs its final norm's rows: times transformers' lm_head
// they must give transformers' logits (the llama-gqa fixture: untied head, fp32).
TEST(DecoderEmbeddings, HiddenStatesTimesTheHeadAreTransformersLogits) {
  golden::Golden g = golden::read("llama-gqa");
  CpuBackend backend(2);
  auto model = load_model(golden::kDir + "llama-gqa", backend, {64, 0, ModelOutput::HiddenStates});
  ASSERT_TRUE(model.ok()) << model.error().message;
  Model& m = *model.value();
  ASSERT_EQ(m.output(), ModelOutput::HiddenStates);
  const int64_t n = int64_t(g.ids.size()), d = m.config().hidden_size, vocab = m.config().vocab_size;
  ASSERT_EQ(m.output_width(), d);
  KvCache cache = m.make_cache(n);
  std::vector<float> hidden(size_t(n * d));
  m.forward(g.ids.data(), n, 0, cache, LogitRows::All, hidden.data());
  auto weights = SafetensorsFile::open(golden::kDir + "llama-gqa/model.safetensors");
  ASSERT_TRUE(weights.ok());
  const float* head = nullptr;
  for (const auto& t : weights->tensors())
    if (t.name == "lm_head.weight") head = t.tensor.as<float>();
  ASSERT_NE(head, nullptr);
  std::vector<float> logits(size_t(n * vocab));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t v = 0; v < vocab; ++v) {
      double acc = 0;
      for (int64_t i = 0; i < d; ++i) acc += double(hidden[size_t(r * d + i)]) * head[v * d + i];
      logits[size_t(r * vocab + v)] = float(acc);
    }
  EXPECT_LT(golden::relative_l2(logits, g.logits), 1e-4);
}

}  // namespace
}  // namespace brisk
