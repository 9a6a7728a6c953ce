// Tokenizer tests on the shared models' real tokenizers: hand-checked facts and round trips.
// Exact agreement with Hugging Face is checked in tokenizer_golden_test.cc.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"

namespace brisk {
namespace {

const std::filesystem::path kShared = BRISK_SHARED_DIR;

std::unique_ptr<Tokenizer> load_shared(const std::string& name) {
  auto result = Tokenizer::load(kShared / "models" / name);
  EXPECT_TRUE(result.ok()) << (result.ok() ? "" : result.error().message);
  return result.ok() ? std::move(result).value() : nullptr;
}

std::vector<std::string> pieces(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  std::vector<std::string> out;
  int32_t previous = -1;
  for (int32_t id : ids) {
    out.push_back(tok.token_bytes(id, previous));
    previous = id;
  }
  return out;
}

TEST(Gpt2Tokenizer, HelloWorldSplitsIntoWordsWithLeadingSpace) {
  auto tok = load_shared("sotu-gpt2");
  ASSERT_TRUE(tok);
  const auto ids = tok->encode("hello world", AddSpecial::No);
  ASSERT_FALSE(ids.empty());
  const auto parts = pieces(*tok, ids);
  EXPECT_EQ(parts.back(), " world");
  EXPECT_EQ(tok->decode(ids), "hello world");
}

}  // namespace
}  // namespace brisk
