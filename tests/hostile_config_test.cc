// Hostile JSON: every field of every config file the loaders read (config.json with its
// quantization_config, tokenizer_config.json, generation_config.json, the sentence-transformers
// modules.json and pooling config) is replaced in turn by a value of each JSON type. A loader must
// accept the file or return an error naming it; no exception may escape and nothing may crash.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "formats/json_file.h"
#include "formats/quantized_checkpoint.h"
#include "models/model_config.h"
#include "runtime/embedding.h"
#include "runtime/generation_config.h"
#include "serve/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace brisk {
namespace {

namespace fs = std::filesystem;
const fs::path kFixtures = BRISK_FIXTURES_DIR;
const fs::path kShared = BRISK_SHARED_DIR;

// A value of every JSON type, one that is out of range for most sizes among them.
const std::vector<Json> kWrongValues = {
    nullptr, 0, -1, 1e300, 2.5, true, "x", Json::array(), Json::array({1}), Json::object()};
constexpr size_t kArrayElementsMutated = 2;  // long arrays (rope factors) repeat one element type

// Every JSON pointer in doc: the root, each object member, the first array elements.
void collect_pointers(const Json& doc, const Json::json_pointer& at, std::vector<Json::json_pointer>& out) {
  out.push_back(at);
  if (doc.is_object()) {
    for (const auto& [key, value] : doc.items()) collect_pointers(value, at / key, out);
  } else if (doc.is_array()) {
    for (size_t i = 0; i < std::min(doc.size(), kArrayElementsMutated); ++i)
      collect_pointers(doc[i], at / i, out);
  }
}

class ScratchDir {
 public:
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("brisk-hostile-" + std::string(info->name()) + "-" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Runs `check` on each mutation of `seed` (a config named `file`); check returns the loader's
// error message or "". Counts the mutations run.
size_t mutate_each_field(const Json& seed, const std::string& file,
                         const std::function<std::string(const Json&)>& check) {
  std::vector<Json::json_pointer> pointers;
  collect_pointers(seed, Json::json_pointer(), pointers);
  size_t runs = 0;
  for (const auto& pointer : pointers) {
    for (const Json& wrong : kWrongValues) {
      Json doc = seed;
      if (pointer.empty()) {
        doc = wrong;
      } else {
        doc[pointer] = wrong;
      }
      const std::string what = file + " " + pointer.to_string() + " = " + wrong.dump();
      try {
        const std::string error = check(doc);
        if (!error.empty()) {
          EXPECT_NE(error.find(file), std::string::npos) << what << ": " << error;
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << what << ": exception escaped: " << e.what();
      }
      ++runs;
    }
  }
  return runs;
}

// A check that writes the mutated document to `path` and runs a loader that reads it; the seed is
// written back afterwards.
size_t mutate_file(const Json& seed, const fs::path& path, const std::function<std::string()>& load) {
  const size_t runs = mutate_each_field(seed, path.filename().string(), [&](const Json& doc) {
    std::ofstream(path, std::ios::trunc) << doc.dump();
    return load();
  });
  std::ofstream(path, std::ios::trunc) << seed.dump();
  return runs;
}

template <typename T>
std::string error_of(const Result<T>& r) {
  return r.ok() ? "" : r.error().message;
}

// config.json as the loaders read it: the model config, then its quantization_config. (Parsed
// in memory: read_json_file's own errors are tested elsewhere.)
std::string load_config(const Json& json) {
  const std::string where = "/model/config.json";
  auto config = parse_model_config(json, where);
  if (!config.ok()) return config.error().message;
  if (config.value().quantization_config.is_null()) return "";
  return error_of(parse_quantization_config(config.value().quantization_config, where));
}

std::vector<Json> config_seeds() {
  std::vector<Json> seeds;
  for (const auto& entry : fs::directory_iterator(kFixtures / "golden")) {
    if (fs::exists(entry.path() / "config.json"))
      seeds.push_back(read_json_file(entry.path() / "config.json").value());
  }
  for (const char* name : {"sotu-llama", "sotu-gpt2", "sotu-qwen2"}) {
    seeds.push_back(read_json_file(kShared / "models" / name / "config.json").value());
  }
  // Quantized checkpoints of every on-disk format brisk writes and reads.
  const Json base = read_json_file(kShared / "models" / "sotu-llama" / "config.json").value();
  for (const QuantizedLayout layout : {QuantizedLayout{DType::Q4, 128, Symmetry::Asymmetric},
                                       QuantizedLayout{DType::Q8A8, 0, Symmetry::Symmetric},
                                       QuantizedLayout{DType::F8, 0, Symmetry::Symmetric},
                                       QuantizedLayout{DType::NF4, 128, Symmetry::Symmetric}}) {
    Json quantized = base;
    quantized["quantization_config"] = quantization_config_json(
        {QuantizedGroup{{"Linear"}, layout}, QuantizedGroup{{"re:.*down_proj"}, layout}}, {"lm_head"});
    seeds.push_back(quantized);
  }
  return seeds;
}

TEST(HostileConfig, EveryConfigJsonFieldOfEveryTypeIsAcceptedOrAnErrorNamingTheFile) {
  size_t runs = 0;
  for (const Json& seed : config_seeds()) {
    ASSERT_EQ(load_config(seed), "") << seed.dump();
    runs += mutate_each_field(seed, "config.json", load_config);
  }
  EXPECT_GT(runs, 1000u);
}

TEST(HostileConfig, TokenizerConfigFields) {
  for (const fs::path& source : {kShared / "models" / "sotu-llama", kFixtures / "golden" / "bert"}) {
    ScratchDir dir;
    for (const char* name : {"tokenizer.json", "vocab.txt"}) {
      if (fs::exists(source / name)) fs::copy_file(source / name, dir.path() / name);
    }
    Json seed = read_json_file(source / "tokenizer_config.json").value();
    seed["chat_template"] = "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}";
    const fs::path file = dir.path() / "tokenizer_config.json";
    const auto load = [&] {
      std::string error = error_of(Tokenizer::load(dir.path()));
      return error.empty() ? error_of(ChatTemplate::from_tokenizer_config(dir.path())) : error;
    };
    std::ofstream(file) << seed.dump();
    ASSERT_EQ(load(), "") << source;
    EXPECT_GT(mutate_file(seed, file, load), 50u);
  }
}

TEST(HostileConfig, GenerationConfigFields) {
  ScratchDir dir;
  Json seed = read_json_file(kShared / "models" / "sotu-llama" / "generation_config.json").value();
  seed.update({{"do_sample", true},
               {"temperature", 0.7},
               {"top_k", 40},
               {"top_p", 0.9},
               {"min_p", 0.05},
               {"repetition_penalty", 1.1},
               {"max_new_tokens", 64},
               {"eos_token_id", {0, 1}}});
  const fs::path file = dir.path() / "generation_config.json";
  std::ofstream(file) << seed.dump();
  const auto load = [&] { return error_of(read_generation_config(dir.path())); };
  ASSERT_EQ(load(), "");
  EXPECT_GT(mutate_file(seed, file, load), 100u);
}

TEST(HostileConfig, SentenceTransformersPoolingFiles) {
  ScratchDir dir;
  const fs::path source = kFixtures / "golden" / "bert";
  fs::copy(source / "1_Pooling", dir.path() / "1_Pooling");
  fs::copy_file(source / "modules.json", dir.path() / "modules.json");
  const auto load = [&] { return error_of(read_pooling_config(dir.path())); };
  ASSERT_EQ(load(), "");
  for (const fs::path& file : {dir.path() / "modules.json", dir.path() / "1_Pooling" / "config.json"}) {
    EXPECT_GT(mutate_file(read_json_file(file).value(), file, load), 20u);
  }
}

}  // namespace
}  // namespace brisk
