// Unicode normalizers (NFC/NFD/NFKC/NFKD through utf8proc, Lowercase, StripAccents and sequences)
// against Hugging Face tokenizers: the bundled model's byte-level BPE tokenizer.json with each
// normalizer swapped in, on strings whose normalized bytes differ between forms. The fixture is
// made by scripts/golden/normalizer_fixtures.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace brisk {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kFixture = fs::path(BRISK_FIXTURES_DIR) / "tokenizer" / "normalizers" / "expected.json";

TEST(Normalizers, IdsMatchHuggingFace) {
  if (!fs::exists(kFixture)) GTEST_SKIP() << "no fixture; run scripts/golden/normalizer_fixtures.py (needs `tokenizers`)";
  const json expected = json::parse(std::ifstream(kFixture));
  const fs::path source = fs::path(BRISK_SOURCE_DIR) / expected["base"].get<std::string>();
  json spec = json::parse(std::ifstream(source));
  const fs::path dir = fs::temp_directory_path() / ("brisk-normalizers-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto strings = expected["strings"].get<std::vector<std::string>>();
  int checked = 0;
  for (const json& normalizer : expected["normalizers"]) {
    spec["normalizer"] = normalizer["config"];
    std::ofstream(dir / "tokenizer.json") << spec.dump();
    auto tokenizer = Tokenizer::load(dir);
    ASSERT_TRUE(tokenizer) << normalizer["config"].dump() << ": " << tokenizer.error().message;
    const auto ids = normalizer["ids"].get<std::vector<std::vector<int32_t>>>();
    for (size_t i = 0; i < strings.size(); ++i) {
      EXPECT_EQ(tokenizer.value()->encode(strings[i], AddSpecial::No), ids[i])
          << normalizer["config"].dump() << " on \"" << strings[i] << "\"";
      ++checked;
    }
  }
  fs::remove_all(dir);
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace brisk
