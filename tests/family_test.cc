// Architecture families and their declarations: the registry, the roles every pass derives
// from, and members checked through the golden fixtures of another (Phi-3's fused projections
// against transformers' Llama logits: Phi-3 is Llama with q/k/v and gate/up stored as one matrix).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <tuple>

#include "backends/cpu/cpu_backend.h"
#include "formats/safetensors.h"
#include "golden_fixture.h"
#include "models/gguf_model.h"

namespace brisk {
namespace {

namespace fs = std::filesystem;

TEST(Registry, UnknownModelTypeListsTheKnownOnes) {
  auto c = parse_model_config(Json{{"model_type", "mamba"}}, "config.json");
  ASSERT_FALSE(c.ok());
  const std::string& e = c.error().message;
  EXPECT_NE(e.find("unknown model_type 'mamba'"), std::string::npos) << e;
  for (const char* known : {"gpt2", "llama", "mistral", "phi3", "qwen2"})
    EXPECT_NE(e.find(known), std::string::npos) << e;
}

// Every tensor of every registered family has a distinct Hugging Face name and a distinct GGUF
// name (the mapping is derived from the roles and the architecture's renamed roles, so two roles
// must never meet on one name).
TEST(Registry, RolesGiveDistinctNames) {
  for (const char* dir : {"llama-mqa-bias", "gpt2", "qwen2", "phi3", "gemma2", "gemma3", "bert", "bert-cls"}) {
    auto c = load_model_config(golden::kDir + dir + "/config.json");
    ASSERT_TRUE(c.ok()) << c.error().message;
    const GgufArchitecture* arch = nullptr;
    for (const GgufArchitecture& g : c->arch->gguf)
      if (g.model_type == c->model_type) arch = &g;
    std::set<std::string> hf, gguf;
    for (const TensorSpec& s : c->arch->tensors(*c)) {
      EXPECT_TRUE(hf.insert(s.name).second) << s.name;
      EXPECT_TRUE(gguf.insert(gguf_tensor_name(s, arch)).second) << gguf_tensor_name(s, arch);
      EXPECT_EQ(s.name.rfind(s.module, 0), 0u) << s.name << " module " << s.module;
    }
  }
}

TEST(Registry, SplitAxesFollowMegatron) {
  EXPECT_EQ(split_axis(Role::AttnQ, Part::Weight), SplitAxis::Columns);
  EXPECT_EQ(split_axis(Role::AttnQkv, Part::Bias), SplitAxis::Columns);
  EXPECT_EQ(split_axis(Role::AttnO, Part::Weight), SplitAxis::Rows);
  EXPECT_EQ(split_axis(Role::MlpDown, Part::Bias), SplitAxis::None);  // added once, after the reduce
  EXPECT_EQ(split_axis(Role::AttnNorm, Part::Weight), SplitAxis::None);
}

// Rows of several same-dtype tensors of `store`, stacked: a fused projection.
NamedTensor stack_rows(const std::vector<const StoredTensor*>& parts, const std::string& name,
                       std::vector<std::vector<uint8_t>>& storage) {
  int64_t rows = 0;
  const int64_t cols = parts[0]->tensor.rank() == 2 ? parts[0]->tensor.shape[1] : 0;
  size_t bytes = 0;
  for (const StoredTensor* p : parts) {
    rows += p->tensor.shape[0];
    bytes += p->tensor.nbytes();
  }
  storage.emplace_back(bytes);
  uint8_t* out = storage.back().data();
  for (const StoredTensor* p : parts) {
    std::memcpy(out, p->tensor.data, p->tensor.nbytes());
    out += p->tensor.nbytes();
  }
  std::vector<int64_t> shape = cols ? std::vector<int64_t>{rows, cols} : std::vector<int64_t>{rows};
  return {name, Tensor{storage.back().data(), parts[0]->tensor.dtype, shape}};
}

// The llama-gqa fixture rewritten as a Phi-3 checkpoint.
fs::path write_phi3_from_llama(const std::string& variant) {
  const fs::path src = golden::kDir + variant;
  const fs::path dst = fs::temp_directory_path() / ("brisk-phi3-" + variant + "-" + std::to_string(::getpid()));
  fs::create_directories(dst);
  auto store = WeightStore::open_dir(src);
  EXPECT_TRUE(store.ok());
  std::vector<std::vector<uint8_t>> storage;
  std::vector<NamedTensor> out;
  for (const auto& [name, stored] : store->all()) {
    const auto at = name.find("self_attn.q_proj");
    const auto gate = name.find("mlp.gate_proj");
    if (at != std::string::npos) {
      const std::string p = name.substr(0, at) + "self_attn.";
      out.push_back(stack_rows({store->find(p + "q_proj.weight"), store->find(p + "k_proj.weight"),
                                store->find(p + "v_proj.weight")},
                               p + "qkv_proj.weight", storage));
    } else if (gate != std::string::npos) {
      const std::string p = name.substr(0, gate) + "mlp.";
      out.push_back(stack_rows({store->find(p + "gate_proj.weight"), store->find(p + "up_proj.weight")},
                               p + "gate_up_proj.weight", storage));
    } else if (name.find("_proj") == std::string::npos || name.find("o_proj") != std::string::npos ||
               name.find("down_proj") != std::string::npos) {
      out.push_back({name, stored.tensor});
    }
  }
  EXPECT_TRUE(write_safetensors(dst / "model.safetensors", out, {{"format", "pt"}}).ok());
  auto config = read_json_file(src / "config.json");
  EXPECT_TRUE(config.ok());
  Json c = *config;
  c["model_type"] = "phi3";
  c["architectures"] = {"Phi3ForCausalLM"};
  std::ofstream(dst / "config.json") << c.dump(2);
  return dst;
}

TEST(Phi3, FusedProjectionsMatchTransformersLlamaLogits) {
  for (const std::string variant : {"llama-gqa", "llama-gqa-bf16"}) {
    const fs::path dir = write_phi3_from_llama(variant);
    const double tolerance = golden::is_bf16(variant) ? 1e-2 : 1e-4;
    golden::Golden g = golden::read(variant);
    CpuBackend backend(2);
    auto model = load_model(dir, backend, {64, 0});
    ASSERT_TRUE(model.ok()) << model.error().message;
    int fused = 0;
    model.value()->visit_tensors([&](const TensorSpec& s, Tensor&) {
      fused += s.role == Role::AttnQkv || s.role == Role::MlpGateUp;
    });
    EXPECT_EQ(fused, 2 * model.value()->config().n_layers);
    for (int64_t chunk : {int64_t(64), int64_t(7), int64_t(1)})
      EXPECT_LT(golden::relative_l2(golden::run(*model.value(), g.ids, chunk), g.logits), tolerance)
          << variant << " chunk=" << chunk;
    fs::remove_all(dir);
  }
}

TEST(Phi3, LongRopeFactorsMustMatchTheHeads) {
  Json c = {{"model_type", "phi3"}, {"vocab_size", 320}, {"hidden_size", 64}, {"intermediate_size", 160},
            {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"max_position_embeddings", 128},
            {"original_max_position_embeddings", 32},
            {"rope_scaling", {{"type", "longrope"}, {"short_factor", {1.0, 1.0}}, {"long_factor", {2.0, 2.0}}}}};
  auto r = parse_model_config(c, "config.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("expected head_dim / 2 = 8"), std::string::npos) << r.error().message;
  c["rope_scaling"]["long_factor"] = {2.0};
  r = parse_model_config(c, "config.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("long_factor"), std::string::npos) << r.error().message;
}

// LongRoPE picks its factors by the instance's context and scales cos/sin by
// sqrt(1 + ln(max / original) / ln(original)) (transformers' default attention factor).
TEST(Phi3, LongRopeFrequencies) {
  std::vector<double> short_f(8), long_f(8);
  for (int i = 0; i < 8; ++i) {
    short_f[size_t(i)] = 1.0 + 0.05 * i;
    long_f[size_t(i)] = 1.0 + 0.4 * i;
  }
  Json c = {{"model_type", "phi3"}, {"vocab_size", 320}, {"hidden_size", 64}, {"intermediate_size", 160},
            {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"max_position_embeddings", 128},
            {"original_max_position_embeddings", 32},
            {"rope_parameters", {{"rope_type", "longrope"}, {"rope_theta", 10000.0}, {"short_factor", short_f},
                                 {"long_factor", long_f}}}};
  auto r = parse_model_config(c, "config.json");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_NEAR(r->rope.attention_factor, std::sqrt(1.0 + std::log(4.0) / std::log(32.0)), 1e-12);
  const std::vector<float> within = r->rope_inv_freq(32), beyond = r->rope_inv_freq(33);
  for (int i = 0; i < 8; ++i) {
    const double base = 1.0 / std::pow(10000.0, 2.0 * i / 16.0);
    EXPECT_FLOAT_EQ(within[size_t(i)], float(base / short_f[size_t(i)]));
    EXPECT_FLOAT_EQ(beyond[size_t(i)], float(base / long_f[size_t(i)]));
  }
}

// Hostile configs of the new families: wrong types, lengths and values are errors naming the field.
TEST(Registry, BadFamilyConfigsNameTheField) {
  const Json gemma = {{"model_type", "gemma2"}, {"vocab_size", 32}, {"hidden_size", 16}, {"intermediate_size", 8},
                      {"num_hidden_layers", 2}, {"num_attention_heads", 2}, {"head_dim", 8}};
  const Json bert = {{"model_type", "bert"}, {"architectures", {"BertForSequenceClassification"}}, {"vocab_size", 32},
                     {"hidden_size", 16}, {"intermediate_size", 8}, {"num_hidden_layers", 1},
                     {"num_attention_heads", 2}, {"id2label", {{"0", "a"}, {"1", "b"}}}};
  ASSERT_TRUE(parse_model_config(gemma, "config.json").ok());
  ASSERT_TRUE(parse_model_config(bert, "config.json").ok());
  const std::vector<std::pair<Json, std::string>> cases = {
      {{{"layer_types", {"sliding_attention"}}}, "layer_types"},
      {{{"layer_types", {"sliding_attention", "chunked"}}}, "layer_types"},
      {{{"attn_logit_softcapping", -1.0}}, "attn_logit_softcapping"},
      {{{"final_logit_softcapping", "30"}}, "final_logit_softcapping"},
      {{{"query_pre_attn_scalar", 0}}, "query_pre_attn_scalar"},
      {{{"sliding_window", -4}}, "sliding_window"},
      {{{"use_bidirectional_attention", true}}, "use_bidirectional_attention"},
      {{{"hidden_activation", "relu"}}, "hidden_activation"},
  };
  for (const auto& [patch, field] : cases) {
    Json c = gemma;
    c.update(patch);
    auto r = parse_model_config(c, "config.json");
    ASSERT_FALSE(r.ok()) << patch.dump();
    EXPECT_NE(r.error().message.find(field), std::string::npos) << r.error().message;
  }
  const std::vector<std::pair<Json, std::string>> bert_cases = {
      {{{"id2label", {{"", "a"}, {"1", "b"}}}}, "id2label"},
      {{{"id2label", {{"0", "a"}, {"00", "b"}}}}, "id2label"},
      {{{"id2label", {{"0", 1}}}}, "id2label"},
      {{{"id2label", Json::array()}}, "id2label"},
      {{{"position_embedding_type", "relative_key"}}, "position_embedding_type"},
      {{{"is_decoder", true}}, "is_decoder"},
      {{{"type_vocab_size", 0}}, "type_vocab_size"},
  };
  for (const auto& [patch, field] : bert_cases) {
    Json c = bert;
    c.update(patch);
    auto r = parse_model_config(c, "config.json");
    ASSERT_FALSE(r.ok()) << patch.dump();
    EXPECT_NE(r.error().message.find(field), std::string::npos) << r.error().message;
  }
}

// Values of the right type but out of range: a non-positive epsilon (rms_norm_eps: -1 was
// accepted and gave NaN logits) and sizes so large that allocating the model aborted.
TEST(Registry, OutOfRangeValuesNameTheField) {
  const Json llama = {{"model_type", "llama"},  {"vocab_size", 32},       {"hidden_size", 16},
                      {"intermediate_size", 8}, {"num_hidden_layers", 2}, {"num_attention_heads", 2}};
  const Json gpt2 = {
      {"model_type", "gpt2"}, {"vocab_size", 32}, {"n_embd", 16}, {"n_layer", 2}, {"n_head", 2}};
  ASSERT_TRUE(parse_model_config(llama, "config.json").ok());
  ASSERT_TRUE(parse_model_config(gpt2, "config.json").ok());
  const std::vector<std::tuple<Json, Json, std::string>> cases = {
      {llama, {{"rms_norm_eps", -1}}, "rms_norm_eps"},
      {llama, {{"rms_norm_eps", 0}}, "rms_norm_eps"},
      {gpt2, {{"layer_norm_epsilon", -1e-5}}, "layer_norm_epsilon"},
      {llama, {{"hidden_size", int64_t(1) << 40}, {"num_attention_heads", 1}}, "hidden_size"},
      {llama, {{"intermediate_size", int64_t(1) << 40}}, "intermediate_size"},
      {llama, {{"num_hidden_layers", 1'000'000}}, "num_hidden_layers"},
      {llama, {{"head_dim", int64_t(1) << 40}}, "head_dim"},
      {llama, {{"vocab_size", int64_t(1) << 40}}, "vocab_size"},
      {llama, {{"max_position_embeddings", int64_t(1) << 50}}, "max_position_embeddings"},
      {gpt2, {{"n_layer", 1'000'000}}, "n_layer"},
  };
  for (const auto& [base, patch, field] : cases) {
    Json c = base;
    c.update(patch);
    auto r = parse_model_config(c, "config.json");
    ASSERT_FALSE(r.ok()) << patch.dump();
    EXPECT_NE(r.error().message.find(field), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("config.json"), std::string::npos) << r.error().message;
  }
}

}  // namespace
}  // namespace brisk
