// Exact agreement with Hugging Face tokenizers (and sentencepiece for tokenizer.model): every
// string in fixtures/tokenizer/strings.json must encode to the recorded ids, with and without
// special tokens, and the ids must decode to the recorded text.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"

namespace brisk {
namespace {

const std::filesystem::path kFixtures = std::filesystem::path(BRISK_FIXTURES_DIR) / "tokenizer";
const std::filesystem::path kModels = std::filesystem::path(BRISK_SHARED_DIR) / "models";

struct GoldenCase {
  std::string name;
  std::filesystem::path tokenizer_dir;
};

std::ostream& operator<<(std::ostream& os, const GoldenCase& c) { return os << c.name; }

class GoldenTokenizer : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenTokenizer, MatchesHuggingFaceOnEveryString) {
  const GoldenCase& param = GetParam();
  std::ifstream in(kFixtures / ("expected-" + param.name + ".json"));
  ASSERT_TRUE(in) << "missing fixture for " << param.name;
  const nlohmann::json expected = nlohmann::json::parse(in);
  auto loaded = Tokenizer::load(param.tokenizer_dir);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  const Tokenizer& tok = **loaded;

  const auto& cases = expected.at("cases");
  ASSERT_GE(cases.size(), 30u);
  size_t matched = 0;
  for (const auto& c : cases) {
    const std::string text = c.at("text");
    const auto ids = c.at("ids").get<std::vector<int32_t>>();
    const auto ids_special = c.at("ids_special").get<std::vector<int32_t>>();
    const std::string decoded = c.at("decoded");
    bool ok = true;
    const auto got = tok.encode(text, AddSpecial::No);
    EXPECT_EQ(got, ids) << "encode: " << text;
    ok = ok && got == ids;
    const auto got_special = tok.encode(text, AddSpecial::Yes);
    EXPECT_EQ(got_special, ids_special) << "encode with specials: " << text;
    ok = ok && got_special == ids_special;
    const std::string got_decoded = tok.decode(ids);
    EXPECT_EQ(got_decoded, decoded) << "decode: " << text;
    ok = ok && got_decoded == decoded;
    if (c.contains("decoded_skip_special")) {
      const std::string skip = c.at("decoded_skip_special");
      EXPECT_EQ(tok.decode(ids, /*skip_special=*/true), skip) << "decode skipping specials: " << text;
      ok = ok && tok.decode(ids, true) == skip;
    }
    // Streaming one token at a time must give exactly the whole-sequence decode.
    StreamDecoder stream(tok);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    EXPECT_EQ(streamed, decoded) << "stream decode: " << text;
    ok = ok && streamed == decoded;
    matched += ok ? 1 : 0;
  }
  std::printf("[ golden ] %s: %zu/%zu cases match\n", param.name.c_str(), matched, cases.size());
  EXPECT_EQ(matched, cases.size());
}

INSTANTIATE_TEST_SUITE_P(All, GoldenTokenizer,
                         ::testing::Values(GoldenCase{"sotu-gpt2", kModels / "sotu-gpt2"},
                                           GoldenCase{"sotu-llama", kModels / "sotu-llama"},
                                           GoldenCase{"sotu-qwen2", kModels / "sotu-qwen2"},
                                           GoldenCase{"spm-bpe-legacy", kFixtures / "spm-bpe-legacy"},
                                           GoldenCase{"spm-bpe-metaspace", kFixtures / "spm-bpe-metaspace"},
                                           GoldenCase{"llama2-spm", kModels / "llama2-tokenizer"}),
                         [](const ::testing::TestParamInfo<GoldenCase>& info) {
                           std::string name = info.param.name;
                           for (char& ch : name) {
                             if (ch == '-') ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace brisk
