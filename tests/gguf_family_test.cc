// GGUF files of the families whose llama.cpp conversion differs most from the Hugging Face
// checkpoint (Phi-3: fused tensors and LongRoPE factor tensors; Gemma-2/3: norms stored as 1 + w,
// soft-caps, windows and rope bases as metadata; BERT: its own names, WordPiece vocabulary and
// pooling type): the golden fixtures converted by tests/gguf_writer.py must give transformers'
// logits and embeddings, and files missing a key or tensor must fail naming it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <tuple>

#include "backends/cpu/cpu_backend.h"
#include "bert_golden.h"
#include "core/dtype.h"
#include "golden_fixture.h"
#include "models/gguf_model.h"
#include "models/model.h"
#include "runtime/embedding.h"

namespace brisk {
namespace {

namespace fs = std::filesystem;
const fs::path kWork = fs::path(BRISK_GGUF_WORK_DIR);

// A golden fixture folder converted as llama.cpp's converter would (type f32 or q8_0). `drop`
// ("--drop-key K" / "--drop-tensor T") makes a hostile file; `tag` names it.
fs::path converted_fixture(const std::string& variant, const std::string& type, const std::string& drop = "",
                           const std::string& tag = "") {
  fs::create_directories(kWork);
  const fs::path out = kWork / ("fixture-" + variant + "-" + type + (tag.empty() ? "" : "-" + tag) + ".gguf");
  const fs::path writer = BRISK_GGUF_WRITER;
  std::error_code ec;
  if (!fs::exists(out) || fs::last_write_time(out, ec) < fs::last_write_time(writer, ec)) {
    const std::string cmd = "python3 " + writer.string() + " model " + golden::kDir + variant + " " + out.string() +
                            " --type " + type + " " + drop;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  return out;
}

using FamilyCase = std::tuple<std::string, std::string>;  // variant, GGUF type
class GgufFamilies : public ::testing::TestWithParam<FamilyCase> {};

// fp32 within the golden tests' 1e-4 relative L2. Q8_0 rounds each weight to 8 bits per
// 32-block absmax, ~3x bf16's error: on these 64-wide random fixtures that moves logits by
// 1.4e-2..2.5e-2 relative L2 (bf16: up to ~1e-2), so its bound is 4e-2; QuantizedIsOnlyRounding
// shows that difference is the rounding alone.
TEST_P(GgufFamilies, MatchTransformers) {
  const auto& [variant, type] = GetParam();
  const double tolerance = type == "f32" ? 1e-4 : 4e-2;
  const golden::Golden g = golden::read(variant);
  ASSERT_FALSE(g.ids.empty());
  CpuBackend backend(2);
  auto model = load_model(converted_fixture(variant, type), backend, {64, 0});
  ASSERT_TRUE(model.ok()) << model.error().message;
  for (int64_t chunk : {int64_t(64), int64_t(7), int64_t(1)}) {
    const double err = golden::relative_l2(golden::run(*model.value(), g.ids, chunk), g.logits);
    EXPECT_LT(err, tolerance) << variant << " " << type << " chunk=" << chunk;
    if (chunk == 64) std::printf("[gguf] %s %s: relative L2 %.3e\n", variant.c_str(), type.c_str(), err);
  }
}

// A Q8_0 file gives what an F32 file holding the same rounded values gives (within fp32
// summation order): quantized tensors take the same mapping as plain ones.
class GgufFamilyWeights : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufFamilyWeights, QuantizedIsOnlyRounding) {
  const std::string variant = GetParam(), type = "q8_0";
  const golden::Golden g = golden::read(variant);
  CpuBackend backend(2);
  auto quantized = load_model(converted_fixture(variant, type), backend, {64, 0});
  auto rounded = load_model(converted_fixture(variant, "f32", "--round-to " + type, "rounded-" + type), backend, {64, 0});
  ASSERT_TRUE(quantized.ok()) << quantized.error().message;
  ASSERT_TRUE(rounded.ok()) << rounded.error().message;
  const auto want = golden::run(*rounded.value(), g.ids, 64);
  EXPECT_LT(golden::relative_l2(golden::run(*quantized.value(), g.ids, 64), want), 1e-5) << variant;
}

// The safetensors folder and its f32 GGUF bind the same weights: names, shapes and runtime
// values (Gemma's norms: the file's 1 + w less 1, plus 1 again at bind, equals the folder's w + 1).
TEST_P(GgufFamilyWeights, SameWeightsAsTheFolder) {
  const std::string variant = GetParam(), type = "f32";
  auto folder = WeightStore::open_dir(golden::kDir + variant);
  ASSERT_TRUE(folder.ok()) << folder.error().message;
  auto gguf = open_gguf_model(converted_fixture(variant, type));
  ASSERT_TRUE(gguf.ok()) << gguf.error().message;
  for (const TensorSpec& spec : gguf->config.arch->tensors(gguf->config)) {
    const StoredTensor* want = folder->find(spec.name);
    const StoredTensor* got = gguf->weights.find(spec.name);
    ASSERT_EQ(want == nullptr, got == nullptr) << spec.name;
    if (!want) continue;
    ASSERT_EQ(got->tensor.shape, want->tensor.shape) << spec.name;
    for (int64_t i = 0; i < want->tensor.numel(); ++i)
      ASSERT_EQ(load_as_f32(got->tensor.data, got->tensor.dtype, size_t(i)) + spec.load_offset,
                load_as_f32(want->tensor.data, want->tensor.dtype, size_t(i)) + spec.load_offset)
          << spec.name << " element " << i;
  }
}

const auto kFamilyVariants = ::testing::Values("phi3", "phi3-longrope", "gemma2", "gemma2-nocap", "gemma3");
INSTANTIATE_TEST_SUITE_P(Gguf, GgufFamilyWeights, kFamilyVariants, golden::test_name);
INSTANTIATE_TEST_SUITE_P(Gguf, GgufFamilies, ::testing::Combine(kFamilyVariants, ::testing::Values("f32", "q8_0")),
                         [](const ::testing::TestParamInfo<FamilyCase>& info) {
                           return golden::test_name({std::get<0>(info.param) + "_" + std::get<1>(info.param), 0});
                         });

// BERT from GGUF: the WordPiece vocabulary tokenizes as the folder's tokenizer.json, the pooling
// comes from bert.pooling_type (mean; normalized, as llama.cpp does), and the embeddings equal
// sentence-transformers' (f32: the folder's bounds; Q8_0: cosine 0.999).
class GgufBert : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufBert, EmbeddingsMatchSentenceTransformers) {
  const std::string type = GetParam();
  const bool exact = type == "f32";
  namespace bg = bert_golden;
  const bg::Arrays want = bg::read_arrays(bg::kDir / "bert" / "embeddings.safetensors");
  const fs::path gguf = converted_fixture("bert", type);
  auto engine = bg::open(gguf, "cpu");
  ASSERT_TRUE(engine);
  auto pooling = read_pooling_config(gguf, default_pooling(engine->model()));
  ASSERT_TRUE(pooling.ok()) << pooling.error().message;
  EXPECT_EQ(pooling->pooling, Pooling::Mean);
  EXPECT_TRUE(pooling->normalize);
  const std::vector<std::string> sentences = {"The State of the Union is strong.",
                                              "Congress must act on the budget this year.", "Café déjà vu 中文",
                                              "We the people"};
  for (int i = 0; i < bg::kSentences; ++i) {
    const std::vector<int32_t> ids = bg::ids_of(want, i);
    auto tokens = encoder_tokens(*engine, sentences[size_t(i)]);
    ASSERT_TRUE(tokens.ok()) << tokens.error().message;
    EXPECT_EQ(*tokens, ids) << "sentence " << i;
    auto mean = embed(*engine, ids, *pooling);
    ASSERT_TRUE(mean.ok()) << mean.error().message;
    const auto& mean_want = want.at("mean_normalized." + std::to_string(i));
    EXPECT_GE(bg::cosine(mean->vector, mean_want), exact ? 0.99999 : 0.999) << "sentence " << i;
    if (exact) {
      EXPECT_LT(bg::max_abs_diff(mean->vector, mean_want), 1e-5) << "sentence " << i;
      auto cls = embed(*engine, ids, {Pooling::Cls, false});
      ASSERT_TRUE(cls.ok()) << cls.error().message;
      EXPECT_LT(bg::max_abs_diff(cls->vector, want.at("cls." + std::to_string(i))), 1e-4) << "sentence " << i;
    }
  }
}
INSTANTIATE_TEST_SUITE_P(Gguf, GgufBert, ::testing::Values("f32", "q8_0"));

// Hostile files: each misses one thing the mapping needs; the error names the file and the key
// or tensor.
struct Hostile {
  std::string variant, drop, name;  // name: the key or tensor the message must name
};

TEST(GgufFamilyErrors, MissingKeysAndTensorsAreNamed) {
  const std::vector<Hostile> cases = {
      {"phi3-longrope", "--drop-key phi3.rope.scaling.original_context_length", "phi3.rope.scaling.original_context_length"},
      {"phi3-longrope", "--drop-tensor rope_factors_short.weight", "rope_factors_short.weight"},
      {"phi3", "--drop-tensor blk.1.attn_qkv.weight", "blk.1.attn_qkv.weight"},
      {"phi3", "--drop-key phi3.attention.layer_norm_rms_epsilon", "phi3.attention.layer_norm_rms_epsilon"},
      {"gemma2", "--drop-key gemma2.attention.layer_norm_rms_epsilon", "gemma2.attention.layer_norm_rms_epsilon"},
      {"gemma2", "--drop-tensor blk.2.post_ffw_norm.weight", "blk.2.post_ffw_norm.weight"},
      {"gemma3", "--drop-key gemma3.context_length", "gemma3.context_length"},
      {"gemma3", "--drop-tensor blk.0.attn_k_norm.weight", "blk.0.attn_k_norm.weight"},
      {"bert", "--drop-key bert.attention.layer_norm_epsilon", "bert.attention.layer_norm_epsilon"},
      {"bert", "--drop-tensor token_types.weight", "token_types.weight"},
      {"bert", "--drop-tensor blk.1.layer_output_norm.bias", "blk.1.layer_output_norm.bias"},
      {"bert", "--drop-tensor position_embd.weight", "position_embd.weight"},
      // llama.cpp keeps BertForSequenceClassification's classifier but drops its pooler.
      {"bert-cls", "", "cls.output.weight"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const Hostile& h = cases[i];
    const fs::path path = converted_fixture(h.variant, "f32", h.drop, h.drop.empty() ? "" : "hostile" + std::to_string(i));
    CpuBackend backend(1);
    auto model = load_model(path, backend, {16, 0});
    ASSERT_FALSE(model.ok()) << path;
    EXPECT_NE(model.error().message.find(h.name), std::string::npos) << model.error().message;
    EXPECT_NE(model.error().message.find(path.filename().string()), std::string::npos) << model.error().message;
  }
}

}  // namespace
}  // namespace brisk
