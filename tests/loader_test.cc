// Every user-facing loader error: a clear message naming the file and the tensor/field, never a
// crash. Each case copies a golden fixture folder to a temp dir and breaks one thing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "backends/cpu/cpu_backend.h"
#include "formats/json_file.h"
#include "formats/quantized_checkpoint.h"
#include "formats/safetensors.h"
#include "models/model.h"

namespace brisk {
namespace {

namespace fs = std::filesystem;
const fs::path kFixture = fs::path(BRISK_FIXTURES_DIR) / "golden" / "llama-gqa";

class LoaderErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("brisk-loader-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(kFixture / f, dir_ / f);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string load_error() {
    CpuBackend backend(1);
    auto model = load_model(dir_, backend, {8, 0});
    EXPECT_FALSE(model.ok()) << "expected an error";
    return model.ok() ? "" : model.error().message;
  }
  void write(const fs::path& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary | std::ios::trunc) << text;
  }
  std::string read(const fs::path& name) { return read_text_file(dir_ / name).value(); }
  void edit_config(const std::function<void(Json&)>& edit) {
    Json j = Json::parse(read("config.json"));
    edit(j);
    write("config.json", j.dump());
  }
  // Rewrites model.safetensors after `edit` changes the tensor list (views into the fixture).
  void edit_weights(const std::function<void(std::vector<NamedTensor>&)>& edit) {
    auto file = SafetensorsFile::open(kFixture / "model.safetensors");
    ASSERT_TRUE(file.ok());
    std::vector<NamedTensor> tensors = file.value().tensors();
    edit(tensors);
    ASSERT_TRUE(write_safetensors(dir_ / "model.safetensors", tensors).ok());
  }
  fs::path dir_;
};

#define EXPECT_HAS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

TEST_F(LoaderErrors, FixtureLoads) {
  CpuBackend backend(1);
  auto model = load_model(dir_, backend, {8, 0});
  EXPECT_TRUE(model.ok()) << model.error().message;
}

TEST_F(LoaderErrors, UnknownModelType) {
  edit_config([](Json& j) { j["model_type"] = "mamba"; });
  auto e = load_error();
  EXPECT_HAS(e, "config.json");
  EXPECT_HAS(e, "unknown model_type 'mamba'");
}

TEST_F(LoaderErrors, MalformedConfigJson) {
  write("config.json", "{\"model_type\": \"llama\", ");
  auto e = load_error();
  EXPECT_HAS(e, "config.json");
  EXPECT_HAS(e, "malformed JSON");
}

// nlohmann reports a number beyond double (1e999) as out_of_range, not parse_error: it escaped
// parse_json and aborted the loader (found by fuzz/model_config_fuzzer).
TEST_F(LoaderErrors, NumberBeyondDoubleIsMalformedJson) {
  write("config.json", R"({"model_type": "llama", "rms_norm_eps": 1e999})");
  auto e = load_error();
  EXPECT_HAS(e, "config.json");
  EXPECT_HAS(e, "malformed JSON");
  const std::string header = R"({"__metadata__": {"x": 1e999}})";
  const uint64_t length = header.size();
  write("model.safetensors", std::string(reinterpret_cast<const char*>(&length), 8) + header);
  auto file = SafetensorsFile::open(dir_ / "model.safetensors");
  ASSERT_FALSE(file.ok());
  EXPECT_HAS(file.error().message, "malformed JSON");
}

TEST_F(LoaderErrors, MissingConfig) {
  fs::remove(dir_ / "config.json");
  EXPECT_HAS(load_error(), "config.json");
}

TEST_F(LoaderErrors, MissingConfigField) {
  edit_config([](Json& j) { j.erase("hidden_size"); });
  EXPECT_HAS(load_error(), "missing field 'hidden_size'");
}

TEST_F(LoaderErrors, WrongFieldType) {
  edit_config([](Json& j) { j["num_hidden_layers"] = "two"; });
  EXPECT_HAS(load_error(), "'num_hidden_layers' must be a positive integer");
}

TEST_F(LoaderErrors, UnsupportedRopeType) {
  edit_config([](Json& j) { j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 2.0}}; });
  EXPECT_HAS(load_error(), "unsupported rope type 'yarn'");
}

TEST_F(LoaderErrors, MissingTensor) {
  edit_weights([](auto& tensors) {
    std::erase_if(tensors, [](const NamedTensor& t) { return t.name == "model.layers.1.mlp.up_proj.weight"; });
  });
  EXPECT_HAS(load_error(), "missing tensor 'model.layers.1.mlp.up_proj.weight'");
}

TEST_F(LoaderErrors, ExtraTensor) {
  edit_weights([](auto& tensors) {
    NamedTensor extra = tensors[0];
    extra.name = "model.layers.7.surprise.weight";
    tensors.push_back(extra);
  });
  auto e = load_error();
  EXPECT_HAS(e, "model.safetensors");
  EXPECT_HAS(e, "unexpected tensor 'model.layers.7.surprise.weight'");
}

TEST_F(LoaderErrors, WrongShape) {
  edit_weights([](auto& tensors) {
    for (auto& t : tensors)
      if (t.name == "model.layers.0.self_attn.k_proj.weight") std::swap(t.tensor.shape[0], t.tensor.shape[1]);
  });
  auto e = load_error();
  EXPECT_HAS(e, "tensor 'model.layers.0.self_attn.k_proj.weight' has shape [64, 32], expected [32, 64]");
}

// A config far larger than its weights (within the size limits) is refused by the shape check
// before the model is built: building allocates activations by the config (here a [rows, 2^22]
// logits buffer and [rows, 2^20] hidden states per layer).
TEST_F(LoaderErrors, HugeConfigIsComparedWithTheWeightsBeforeAllocating) {
  edit_config([](Json& j) {
    j["hidden_size"] = int64_t(1) << 20;
    j["intermediate_size"] = int64_t(1) << 20;
    j["vocab_size"] = int64_t(1) << 22;
    j["head_dim"] = 16;
  });
  auto e = load_error();
  EXPECT_HAS(e, "model.safetensors: tensor 'model.embed_tokens.weight' has shape");
  EXPECT_HAS(e, "from config.json");
}

// The families read their fields before parse_model_config checks the sizes, and some loop or
// multiply over them while reading: a layer count of 2^52 allocated per-layer windows (or looped
// for ever), and GPT-2's default n_inner = 4 * n_embd overflowed (found by
// fuzz/model_config_fuzzer). Those sizes are bounded as they are read.
TEST(ConfigSizeLimits, SizesAFamilyLoopsOrMultipliesOverAreBoundedAsRead) {
  const fs::path golden = fs::path(BRISK_FIXTURES_DIR) / "golden";
  const std::vector<std::tuple<std::string, std::string, int64_t>> cases = {
      {"llama-gqa", "num_hidden_layers", int64_t(1) << 52}, {"mistral-window", "num_hidden_layers", int64_t(1) << 52},
      {"gemma2", "num_hidden_layers", int64_t(1) << 52},    {"gemma3", "num_hidden_layers", int64_t(1) << 52},
      {"bert", "num_hidden_layers", int64_t(1) << 52},      {"gpt2", "n_layer", int64_t(1) << 52},
      {"gpt2", "n_embd", int64_t(1) << 62}};
  for (const auto& [fixture, field, value] : cases) {
    Json config = read_json_file(golden / fixture / "config.json").value();
    config[field] = value;
    auto parsed = parse_model_config(config, "config.json");
    ASSERT_FALSE(parsed.ok()) << fixture << " " << field;
    EXPECT_HAS(parsed.error().message, "field '" + field + "' = " + std::to_string(value) + " exceeds brisk's limit");
  }
}

// Error messages quoted the offending JSON with dump(), which recurses once per nesting level: a
// deeply nested array as a config field or a safetensors shape overflowed the stack.
TEST(ConfigErrors, DeeplyNestedValuesAreDescribedNotDumped) {
  constexpr int kDepth = 200000;  // ~400 KB of brackets: past any stack in release builds too
  const std::string deep = std::string(kDepth, '[') + std::string(kDepth, ']');
  auto config = parse_json(R"({"model_type": "llama", "vocab_size": )" + deep + "}", "config.json");
  ASSERT_TRUE(config.ok()) << config.error().message;
  auto parsed = parse_model_config(config.value(), "config.json");
  ASSERT_FALSE(parsed.ok());
  EXPECT_HAS(parsed.error().message, "field 'vocab_size' must be a positive integer, got an array of 1 elements");

  const fs::path path = fs::temp_directory_path() / ("brisk-deep-" + std::to_string(::getpid()) + ".safetensors");
  const std::string header =
      R"({"a": {"dtype": "F32", "shape": [4611686018427387904, 4, )" + deep + R"(], "data_offsets": [0, 0]}})";
  const uint64_t length = header.size();
  std::ofstream(path, std::ios::binary) << std::string(reinterpret_cast<const char*>(&length), 8) << header;
  auto file = SafetensorsFile::open(path);
  fs::remove(path);
  ASSERT_FALSE(file.ok());
  EXPECT_HAS(file.error().message, "shape entry 1 (4) overflows");
}

TEST_F(LoaderErrors, WrongDtype) {
  edit_weights([](auto& tensors) {
    for (auto& t : tensors)
      if (t.name == "model.norm.weight") t.tensor.dtype = DType::I32;
  });
  EXPECT_HAS(load_error(), "tensor 'model.norm.weight' has dtype I32");
}

TEST_F(LoaderErrors, TruncatedFile) {
  std::string bytes = read("model.safetensors");
  write("model.safetensors", bytes.substr(0, bytes.size() / 2));
  auto e = load_error();
  EXPECT_HAS(e, "model.safetensors");
  EXPECT_HAS(e, "truncated");
}

TEST_F(LoaderErrors, TooShortForHeader) {
  write("model.safetensors", "abc");
  EXPECT_HAS(load_error(), "too short");
}

TEST_F(LoaderErrors, HeaderLengthBeyondFile) {
  std::string bytes = read("model.safetensors");
  uint64_t huge = uint64_t(1) << 40;
  std::memcpy(bytes.data(), &huge, 8);
  write("model.safetensors", bytes);
  EXPECT_HAS(load_error(), "header length");
}

TEST_F(LoaderErrors, CorruptHeaderJson) {
  std::string bytes = read("model.safetensors");
  bytes[8] = '[';  // the header must be an object; '[' followed by '"' is invalid JSON
  bytes[9] = ';';
  write("model.safetensors", bytes);
  auto e = load_error();
  EXPECT_HAS(e, "safetensors header");
}

// A safetensors file of the given header JSON text and data bytes; returns open()'s error or "".
std::string safetensors_error(const fs::path& path, const std::string& header, size_t data_bytes,
                              int64_t header_length_delta = 0) {
  const uint64_t length = header.size() + header_length_delta;
  std::string bytes(reinterpret_cast<const char*>(&length), 8);
  bytes += header;
  bytes.append(data_bytes, '\0');
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  auto file = SafetensorsFile::open(path);
  return file.ok() ? "" : file.error().message;
}

std::string f32_entry(const std::string& name, int64_t elements, uint64_t begin) {
  return "\"" + name + "\": {\"dtype\": \"F32\", \"shape\": [" + std::to_string(elements) +
         "], \"data_offsets\": [" + std::to_string(begin) + ", " + std::to_string(begin + 4 * elements) +
         "]}";
}

// What the reference implementation rejects: byte counts that overflow, ranges that overlap,
// alias, leave gaps or stop before the file ends, names given twice, a header length off by one.
TEST_F(LoaderErrors, SafetensorsRangesMustTileTheDataExactly) {
  const fs::path p = dir_ / "x.safetensors";
  const std::string a = f32_entry("a", 2, 0), b = f32_entry("b", 2, 8);
  EXPECT_EQ(safetensors_error(p, "{" + a + ", " + b + "}", 16), "");
  EXPECT_EQ(safetensors_error(p, "{}", 0), "");
  // F32 [2^62] is 2^64 bytes, which wrapped to 0 and matched data_offsets [0, 0].
  EXPECT_HAS(safetensors_error(
                 p, R"({"a": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]}})", 0),
             "overflows");
  EXPECT_HAS(safetensors_error(
                 p, R"({"a": {"dtype": "U8", "shape": [9223372036854775808], "data_offsets": [0, 0]}})", 0),
             "overflows");
  EXPECT_HAS(safetensors_error(p, "{" + a + ", " + f32_entry("b", 2, 4) + "}", 12), "claimed by two tensors");
  EXPECT_HAS(safetensors_error(p, "{" + a + ", " + f32_entry("b", 2, 0) + "}", 8), "claimed by two tensors");
  EXPECT_HAS(safetensors_error(p, "{" + a + ", " + f32_entry("b", 2, 12) + "}", 20), "belong to no tensor");
  EXPECT_HAS(safetensors_error(p, "{" + a + "}", 12), "trailing bytes");
  EXPECT_HAS(safetensors_error(p, "{" + a + ", " + f32_entry("a", 2, 8) + "}", 16), "names tensor 'a' twice");
  EXPECT_HAS(safetensors_error(p, "{" + a + ", " + b + "}  ", 16, -1), "x.safetensors");
  EXPECT_HAS(safetensors_error(p, "{" + a + ", " + b + "}", 16, +1), "x.safetensors");
  // Every shipped file still opens.
  EXPECT_TRUE(SafetensorsFile::open(kFixture / "model.safetensors").ok());
}

TEST_F(LoaderErrors, NoWeights) {
  fs::remove(dir_ / "model.safetensors");
  EXPECT_HAS(load_error(), "no model.safetensors");
}

TEST_F(LoaderErrors, NotADirectory) {
  CpuBackend backend(1);
  auto model = load_model(dir_ / "nope", backend);
  ASSERT_FALSE(model.ok());
  EXPECT_HAS(model.error().message, "not a model folder");
}

// Splits the weights into two shards with an index; loads, then breaks the index.
class ShardedLoad : public LoaderErrors {
 protected:
  void shard() {
    auto file = SafetensorsFile::open(kFixture / "model.safetensors");
    ASSERT_TRUE(file.ok());
    std::vector<NamedTensor> a, b;
    Json map = Json::object();
    for (const auto& t : file.value().tensors()) {
      bool first = t.name.find("layers.1.") == std::string::npos;
      (first ? a : b).push_back(t);
      map[t.name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    }
    ASSERT_TRUE(write_safetensors(dir_ / "model-00001-of-00002.safetensors", a).ok());
    ASSERT_TRUE(write_safetensors(dir_ / "model-00002-of-00002.safetensors", b).ok());
    fs::remove(dir_ / "model.safetensors");
    index_ = {{"metadata", {{"total_size", 0}}}, {"weight_map", map}};
    write("model.safetensors.index.json", index_.dump());
  }
  Json index_;
};

TEST_F(ShardedLoad, LoadsAndMatchesSingleFile) {
  shard();
  CpuBackend backend(1);
  auto sharded = load_model(dir_, backend, {8, 0});
  ASSERT_TRUE(sharded.ok()) << sharded.error().message;
  auto single = load_model(kFixture, backend, {8, 0});
  ASSERT_TRUE(single.ok());
  const int32_t ids[4] = {1, 5, 9, 300};
  const int64_t vocab = single.value()->config().vocab_size;
  std::vector<float> la(static_cast<size_t>(vocab)), lb(static_cast<size_t>(vocab));
  auto ca = sharded.value()->make_cache(8), cb = single.value()->make_cache(8);
  sharded.value()->forward(ids, 4, 0, ca, LogitRows::Last, la.data());
  single.value()->forward(ids, 4, 0, cb, LogitRows::Last, lb.data());
  EXPECT_EQ(la, lb);
}

TEST_F(ShardedLoad, MissingShard) {
  shard();
  fs::remove(dir_ / "model-00002-of-00002.safetensors");
  EXPECT_HAS(load_error(), "model-00002-of-00002.safetensors: cannot open");
}

TEST_F(ShardedLoad, TensorNotInNamedShard) {
  shard();
  index_["weight_map"]["model.layers.1.mlp.up_proj.weight"] = "model-00001-of-00002.safetensors";
  write("model.safetensors.index.json", index_.dump());
  EXPECT_HAS(load_error(), "'model.layers.1.mlp.up_proj.weight' is mapped to model-00001-of-00002.safetensors");
}

TEST_F(ShardedLoad, MalformedIndex) {
  shard();
  write("model.safetensors.index.json", "{\"weight_map\": 3}");
  EXPECT_HAS(load_error(), "missing 'weight_map' object");
}

// quantization_config: one group per scheme, modules matched by name, then "re:" pattern, then
// class; malformed groups named in the error.
TEST(QuantizationConfig, GroupsMatchByNameThenPatternThenClass) {
  const Json q = Json::parse(R"({
    "quant_method": "compressed-tensors", "format": "pack-quantized",
    "config_groups": {
      "group_0": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "int", "symmetric": true,
                                                     "strategy": "group", "group_size": 128}},
      "group_1": {"targets": ["re:model\\.layers\\.1\\..*"],
                  "weights": {"num_bits": 4, "type": "int", "symmetric": false, "strategy": "group", "group_size": 256}},
      "group_2": {"targets": ["lm_head"], "weights": {"num_bits": 8, "type": "int", "symmetric": true, "strategy": "channel"}},
      "group_3": {"targets": ["model.embed_tokens"], "format": "float-quantized",
                  "weights": {"num_bits": 8, "type": "float", "symmetric": true, "strategy": "channel"}}}})");
  auto groups = parse_quantization_config(q, "config.json");
  ASSERT_TRUE(groups.ok()) << groups.error().message;
  ASSERT_EQ(groups.value().size(), 4u);
  auto dtype_of = [&](const std::string& module) {
    const QuantizedGroup* g = group_for(groups.value(), module);
    return g ? g->layout.runtime : DType::F32;
  };
  EXPECT_EQ(dtype_of("lm_head"), DType::Q8);
  EXPECT_EQ(dtype_of("model.embed_tokens"), DType::F8);  // the group's own format
  EXPECT_EQ(dtype_of("model.layers.0.mlp.up_proj"), DType::Q4);
  const QuantizedGroup* one = group_for(groups.value(), "model.layers.1.mlp.up_proj");
  ASSERT_NE(one, nullptr);
  EXPECT_EQ(one->layout.group, 256);
  EXPECT_EQ(one->layout.symmetry, Symmetry::Asymmetric);
  // "re:" matches from the start of the name, as Python's re.match.
  EXPECT_EQ(group_for(groups.value(), "x.model.layers.1.q")->layout.group, 128);

  const Json no_class = Json::parse(R"({"format": "pack-quantized", "config_groups": {"g": {"targets": ["lm_head"],
      "weights": {"num_bits": 8, "type": "int", "symmetric": true, "strategy": "channel"}}}})");
  auto only_head = parse_quantization_config(no_class, "config.json");
  ASSERT_TRUE(only_head.ok());
  EXPECT_EQ(group_for(only_head.value(), "model.layers.0.mlp.up_proj"), nullptr);
}

TEST(QuantizationConfig, MalformedGroupsAreNamed) {
  const std::string w4 = R"("weights": {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"format": "pack-quantized", "config_groups": {}})", "at least one group"},
      {R"({"format": "pack-quantized", "config_groups": {"g": {)" + w4 + "}}}", "group 'g': 'targets' must be"},
      {R"({"format": "pack-quantized", "config_groups": {"g": {"targets": [7], )" + w4 + "}}}", "must be a string"},
      {R"({"format": "pack-quantized", "config_groups": {"g": {"targets": ["re:(["], )" + w4 + "}}}",
       "not a valid regular expression"},
      {R"({"format": "pack-quantized", "config_groups": {"g": {"targets": ["Linear"]}}})", "group 'g': config group has no 'weights'"},
      {R"({"format": "pack-quantized", "config_groups": {"g": {"targets": ["Linear"], "format": "naive-quantized", )" + w4 +
           "}}}",
       "format 'naive-quantized' with 4-bit"},
  };
  for (const auto& [json, needle] : cases) {
    auto r = parse_quantization_config(Json::parse(json), "dir/config.json");
    ASSERT_FALSE(r.ok()) << json;
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("dir/config.json"), std::string::npos) << r.error().message;
  }
}

}  // namespace
}  // namespace brisk
