// GGUF byte-level BPE vocabularies under every pre-tokenizer name llama.cpp knows
// (tokenizer.ggml.pre): each loads, the splits of a representative subset are checked by hand,
// and, when the fixture from scripts/golden/gguf_pretokenizer_fixtures.py is present, the ids of
// every row equal Hugging Face tokenizers' on a tokenizer.json with the same vocabulary, merges
// and split regexes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/byte_level.h"
#include "tokenizer/gguf_pre_tokenizers.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace brisk {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kFixtureDir = fs::path(BRISK_FIXTURES_DIR) / "tokenizer" / "gguf-pretokenizers";

// ------------------------------------------------------------------ a GGUF with only metadata

class GgufBuilder {
 public:
  void string(const std::string& key, const std::string& value) {
    header(key, kString);
    put_string(value);
  }
  void strings(const std::string& key, const std::vector<std::string>& values) {
    header(key, kArray);
    put(kString);
    put(uint64_t(values.size()));
    for (const std::string& v : values) put_string(v);
  }
  void boolean(const std::string& key, bool value) {
    header(key, kBool);
    put(uint8_t(value));
  }
  std::string bytes() const {
    std::string out = "GGUF";
    auto append = [&](auto v) { out.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
    append(uint32_t(3));        // version
    append(uint64_t(0));        // tensors
    append(uint64_t(n_keys_));  // key-value pairs
    return out + body_;
  }

 private:
  static constexpr uint32_t kBool = 7, kString = 8, kArray = 9;
  template <class T>
  void put(T v) {
    body_.append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  void put_string(const std::string& s) {
    put(uint64_t(s.size()));
    body_ += s;
  }
  void header(const std::string& key, uint32_t type) {
    put_string(key);
    put(type);
    ++n_keys_;
  }
  std::string body_;
  size_t n_keys_ = 0;
};

struct Vocab {
  std::vector<std::string> tokens;  // id order, byte-level spellings
  std::vector<std::string> merges;  // "left right"
};

// The 256 byte tokens plus a few merges that cross the boundaries pre-tokenizers disagree on
// (digit runs, a space before a word or digit, contractions, letter case).
Vocab small_vocab() {
  Vocab v;
  for (int b = 0; b < 256; ++b) {
    std::string t;
    byte_level::encode(std::string(1, char(b)), t);
    v.tokens.push_back(t);
  }
  auto mapped = [](std::string_view raw) {
    std::string t;
    byte_level::encode(raw, t);
    return t;
  };
  for (auto [l, r] : std::vector<std::pair<std::string, std::string>>{{"1", "2"},
                                                                      {"12", "3"},
                                                                      {"123", "4"},
                                                                      {" ", "1"},
                                                                      {" ", " "},
                                                                      {"'", "s"},
                                                                      {"l", "l"},
                                                                      {"'", "ll"},
                                                                      {"H", "e"},
                                                                      {"He", "ll"},
                                                                      {" ", "w"},
                                                                      {"\n", "\n"},
                                                                      {"e", "W"},
                                                                      {"o", "r"}}) {
    v.merges.push_back(mapped(l) + " " + mapped(r));
    v.tokens.push_back(mapped(l + r));
  }
  return v;
}

fs::path write_gguf(const Vocab& vocab, const std::string& pre) {
  GgufBuilder g;
  g.string("general.architecture", "llama");
  g.string("tokenizer.ggml.model", "gpt2");
  g.string("tokenizer.ggml.pre", pre);
  g.strings("tokenizer.ggml.tokens", vocab.tokens);
  g.strings("tokenizer.ggml.merges", vocab.merges);
  g.boolean("tokenizer.ggml.add_bos_token", false);
  const fs::path p = fs::temp_directory_path() / ("brisk-gguf-pre-" + std::to_string(::getpid()) + ".gguf");
  std::ofstream(p, std::ios::binary) << g.bytes();
  return p;
}

Result<std::unique_ptr<Tokenizer>> load_with(const Vocab& vocab, const std::string& pre) {
  const fs::path p = write_gguf(vocab, pre);
  auto tok = Tokenizer::load(p);
  fs::remove(p);
  return tok;
}

const std::vector<std::string>& hard_strings() {
  static const std::vector<std::string> strings = {
      "Hello world, 1234567 and 2024-12-06: 3.14159!", "I'm sure you'RE right; they'll say it's DON'T.",
      "  leading   and   trailing spaces   ",          "tabs\tand\t\tnewlines\n\nline\r\nend\n",
      "日本語のテキスト 中文字符 한국어 文字abc",      "café naïve Ångström e\xcc\x81 ÉCOLE",
      "emoji 👋🏽 🇫🇷 ❤️ done",           "HelloWorld camelCase XMLHttpRequest",
      "<sentinel:12> IMGIMGABZ (a|b), [x]; {y}…",      "مرحبا، दुनिया। Привет",
  };
  return strings;
}

// ------------------------------------------------------------------ every name loads

// The names llama.cpp's llama_vocab::impl::load() maps for byte-level BPE vocabularies
// (src/llama-vocab.cpp), listed independently of the table.
const char* const kLlamaCppNames[] = {"default",
                                      "minicpm5",
                                      "llama3",
                                      "llama-v3",
                                      "llama-bpe",
                                      "falcon3",
                                      "falcon-h1",
                                      "pixtral",
                                      "midm-2.0",
                                      "lfm2",
                                      "jina-v5-nano",
                                      "deepseek-llm",
                                      "deepseek-coder",
                                      "deepseek-v3",
                                      "spark2_5",
                                      "youtu",
                                      "falcon",
                                      "mpt",
                                      "starcoder",
                                      "gpt-2",
                                      "phi-2",
                                      "jina-es",
                                      "jina-de",
                                      "gigachat",
                                      "jina-v2-es",
                                      "jina-v2-de",
                                      "a.x-4.0",
                                      "mellum",
                                      "modern-bert",
                                      "jais-2",
                                      "jina-v1-en",
                                      "jina-v2-code",
                                      "roberta-bpe",
                                      "refact",
                                      "command-r",
                                      "qwen2",
                                      "deepseek-r1-qwen",
                                      "kormo",
                                      "f2llmv2",
                                      "qwen35",
                                      "stablelm2",
                                      "olmo",
                                      "dbrx",
                                      "smaug-bpe",
                                      "poro-chat",
                                      "glm4",
                                      "chatglm-bpe",
                                      "viking",
                                      "jais",
                                      "tekken",
                                      "smollm",
                                      "codeshell",
                                      "bloom",
                                      "gpt3-finnish",
                                      "exaone",
                                      "exaone4",
                                      "exaone-moe",
                                      "chameleon",
                                      "minerva-7b",
                                      "megrez",
                                      "gpt-4o",
                                      "llama4",
                                      "kanana2",
                                      "talkie",
                                      "granite-embed-multi-97m",
                                      "tiny_aya",
                                      "cohere2moe",
                                      "superbpe",
                                      "trillion",
                                      "granite-docling",
                                      "bailingmoe",
                                      "bailingmoe2",
                                      "llada-moe",
                                      "seed-coder",
                                      "hunyuan",
                                      "hunyuan-dense",
                                      "hy_v4",
                                      "joyai-llm",
                                      "kimi-k2",
                                      "ufakzeka",
                                      "grok-2",
                                      "afmoe",
                                      "laguna",
                                      "minimax-m2",
                                      "solar-open",
                                      "mellum2"};

TEST(GgufPreTokenizers, TableCoversLlamaCppNames) {
  for (const char* name : kLlamaCppNames) EXPECT_NE(gguf_pre::find(name), nullptr) << name;
  size_t n = 0;
  for (const gguf_pre::Row& row : gguf_pre::rows()) n += row.names.size();
  EXPECT_EQ(n, std::size(kLlamaCppNames)) << "a table name llama.cpp does not map";
}

TEST(GgufPreTokenizers, EveryNameLoadsAndRoundTrips) {
  const Vocab vocab = small_vocab();
  for (const gguf_pre::Row& row : gguf_pre::rows()) {
    for (std::string_view name : row.names) {
      auto tok = load_with(vocab, std::string(name));
      ASSERT_TRUE(tok.ok()) << name << ": " << tok.error().message;
      for (const std::string& s : hard_strings()) {
        const auto ids = tok.value()->encode(s, AddSpecial::No);
        EXPECT_FALSE(ids.empty()) << name;
        EXPECT_EQ(tok.value()->decode(ids), s) << name;
      }
    }
  }
}

TEST(GgufPreTokenizers, UnknownNameListsTheKnownOnes) {
  auto tok = load_with(small_vocab(), "no-such-pre");
  ASSERT_FALSE(tok.ok());
  for (const char* part : {"tokenizer.ggml.pre", "'no-such-pre'", "deepseek-llm", "qwen2", "kimi-k2"})
    EXPECT_NE(tok.error().message.find(part), std::string::npos) << tok.error().message;
  auto gemma = load_with(small_vocab(), "gemma4");
  ASSERT_FALSE(gemma.ok());
  EXPECT_NE(gemma.error().message.find("not byte-level"), std::string::npos) << gemma.error().message;
}

// ------------------------------------------------------------------ splits, checked by hand

std::vector<std::string> words(std::string_view pre, std::string_view text) {
  const gguf_pre::Row* row = gguf_pre::find(pre);
  EXPECT_NE(row, nullptr) << pre;
  if (!row) return {};
  auto p = PreTokenizer::from_json(gguf_pre::pre_tokenizer_json(*row), std::string(pre));
  EXPECT_TRUE(p.ok()) << p.error().message;
  std::vector<std::string> out;
  if (p.ok()) p.value().split(text, true, [&](std::string_view w) { out.emplace_back(w); });
  return out;
}

using Words = std::vector<std::string>;

TEST(GgufPreTokenizers, DigitRuns) {
  EXPECT_EQ(words("gpt-2", "abc 1234"), (Words{"abc", " 1234"}));
  EXPECT_EQ(words("llama-bpe", "abc 1234"), (Words{"abc", " ", "123", "4"}));
  EXPECT_EQ(words("qwen2", "abc 1234"), (Words{"abc", " ", "1", "2", "3", "4"}));
  EXPECT_EQ(words("starcoder", "abc 1234"), (Words{"abc", " ", "1", "2", "3", "4"}));
  EXPECT_EQ(words("deepseek-v3", "abc 1234"), (Words{"abc", " ", "123", "4"}));
  EXPECT_EQ(words("default", "abc 1234"), (Words{"abc", " ", "123", "4"}));
  EXPECT_EQ(words("falcon", "abc 1234"), (Words{"abc", " ", "123", "4"}));
  // Groups of three counted from the right: a zero-width split (superbpe), a lookahead (tiny_aya,
  // afmoe).
  EXPECT_EQ(words("superbpe", "x 1234567"), (Words{"x ", "1", "234", "567"}));
  EXPECT_EQ(words("tiny_aya", "x 1234567"), (Words{"x", " ", "1", "234", "567"}));
  EXPECT_EQ(words("afmoe", "x 1234567"), (Words{"x", " ", "1", "234", "567"}));
}

TEST(GgufPreTokenizers, ScriptsCaseAndContractions) {
  EXPECT_EQ(words("kimi-k2", "中文abc x中"), (Words{"中文", "abc", " x", "中"}));
  EXPECT_EQ(words("kimi-k2", "I'm"), (Words{"I'm"}));
  EXPECT_EQ(words("tekken", "HelloWorld"), (Words{"Hello", "World"}));
  EXPECT_EQ(words("gpt-4o", "HelloWorld you're"), (Words{"Hello", "World", " you're"}));
  EXPECT_EQ(words("bailingmoe", "it's"), (Words{"it", "'s"}));
  EXPECT_EQ(words("llama3", "DON'T"), (Words{"DON", "'T"}));
  EXPECT_EQ(words("bloom", "Hello, world!"), (Words{"Hello", ",", " world", "!"}));
  EXPECT_EQ(words("deepseek-llm", "a\nb"), (Words{"a", "\n", "b"}));
  EXPECT_EQ(words("chameleon", "<sentinel:12>x"), (Words{"<", "sentinel", ":", "1", "2", ">", "x"}));
}

// The same merges give different ids once the words differ.
TEST(GgufPreTokenizers, IdsFollowTheSplits) {
  const Vocab vocab = small_vocab();
  auto ids_of = [&](const std::string& pre, std::vector<std::string> pieces) {
    auto tok = load_with(vocab, pre);
    EXPECT_TRUE(tok.ok()) << tok.error().message;
    std::vector<int32_t> ids;
    for (const std::string& p : pieces) {
      std::string mapped;
      byte_level::encode(p, mapped);
      ids.push_back(tok.value()->token_to_id(mapped).value_or(-1));
    }
    return std::pair(tok.value()->encode(" 1234 Hello", AddSpecial::No), ids);
  };
  for (auto [pre, pieces] :
       std::vector<std::pair<std::string, Words>>{{"gpt-2", {" ", "1234", " ", "Hell", "o"}},
                                                  {"llama-bpe", {" ", "123", "4", " ", "Hell", "o"}},
                                                  {"qwen2", {" ", "1", "2", "3", "4", " ", "Hell", "o"}},
                                                  {"starcoder", {" ", "1", "2", "3", "4", " ", "Hell", "o"}},
                                                  {"default", {" ", "123", "4", " ", "Hell", "o"}}}) {
    const auto [got, want] = ids_of(pre, pieces);
    EXPECT_EQ(got, want) << pre;
  }
}

// llama.cpp takes a Llama 3 word that is a token whole (ignore_merges) and adds BOS by default.
TEST(GgufPreTokenizers, RowFlags) {
  EXPECT_EQ(gguf_pre::find("llama-bpe")->whole_words, gguf_pre::WholeWords::TakeIfInVocab);
  EXPECT_EQ(gguf_pre::find("smaug-bpe")->whole_words, gguf_pre::WholeWords::MergeAsUsual);
  EXPECT_TRUE(gguf_pre::find("tekken")->add_bos_by_default);
  EXPECT_FALSE(gguf_pre::find("qwen2")->add_bos_by_default);
}

// ------------------------------------------------------------------ ids against Hugging Face

TEST(GgufPreTokenizers, IdsMatchHuggingFace) {
  if (!fs::exists(kFixtureDir / "expected.json")) {
    GTEST_SKIP() << "no fixture; run scripts/golden/gguf_pretokenizer_fixtures.py (needs `tokenizers`)";
  }
  const json model = json::parse(std::ifstream(kFixtureDir / "vocab.json"));
  const json expected = json::parse(std::ifstream(kFixtureDir / "expected.json"));
  Vocab vocab;
  vocab.tokens.resize(model.at("vocab").size());
  for (const auto& [token, id] : model.at("vocab").items()) vocab.tokens.at(id.get<size_t>()) = token;
  for (const auto& m : model.at("merges")) vocab.merges.push_back(m.get<std::string>());
  const auto strings = expected.at("strings").get<std::vector<std::string>>();
  size_t checked = 0;
  for (const auto& [name, ids_per_string] : expected.at("rows").items()) {
    auto tok = load_with(vocab, name);
    ASSERT_TRUE(tok.ok()) << name << ": " << tok.error().message;
    for (size_t i = 0; i < strings.size(); ++i) {
      EXPECT_EQ(tok.value()->encode(strings[i], AddSpecial::No),
                ids_per_string.at(i).get<std::vector<int32_t>>())
          << name << " on \"" << strings[i] << "\"";
    }
    ++checked;
  }
  EXPECT_EQ(checked, gguf_pre::rows().size()) << "the fixture should cover every row";
}

}  // namespace
}  // namespace brisk
