// Tokenizer behaviour that the golden fixtures do not pin down on their own: hand-checked facts
// on the shared tokenizers, round trips on long real text, streaming of split characters, the
// added-token flags and merge order on small synthetic tokenizer.json files, and error paths.
// Exact agreement with Hugging Face is checked in tokenizer_golden_test.cc.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tokenizer/normalizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/stream_decoder.h"

namespace brisk {
namespace {

namespace fs = std::filesystem;
const fs::path kShared = BRISK_SHARED_DIR;
const fs::path kFixtures = fs::path(BRISK_FIXTURES_DIR) / "tokenizer";

std::unique_ptr<Tokenizer> load_or_fail(const fs::path& dir) {
  auto result = Tokenizer::load(dir);
  EXPECT_TRUE(result.ok()) << (result.ok() ? "" : result.error().message);
  return result.ok() ? std::move(result).value() : nullptr;
}

std::vector<std::string> token_texts(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  std::vector<std::string> out;
  int32_t previous = -1;
  for (int32_t id : ids) {
    out.push_back(tok.token_bytes(id, previous));
    previous = id;
  }
  return out;
}

std::string read_text(const fs::path& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str().substr(0, max_bytes);
}

// A scratch model folder holding the given files, removed at the end of the test.
class ScratchDir {
 public:
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("brisk-tok-" + std::string(info->name()) + "-" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() { fs::remove_all(path_); }
  void write(const std::string& name, const std::string& content) const {
    std::ofstream(path_ / name, std::ios::binary) << content;
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A character-level BPE over {a, b, c, t, space} with the caller's merges and added tokens (JSON
// text); `overrides` (a JSON object) replaces top-level sections. Ids: a=0 b=1 space=2 c=3 t=4
// ab=5 aa=6.
std::string tiny_tokenizer_json(const std::string& merges, const std::string& added_tokens,
                                const std::string& overrides = "{}") {
  nlohmann::json tokenizer = {{"version", "1.0"},
                              {"normalizer", nullptr},
                              {"pre_tokenizer", nullptr},
                              {"post_processor", nullptr},
                              {"decoder", nullptr}};
  tokenizer["model"] = {{"type", "BPE"},
                        {"vocab", {{"a", 0}, {"b", 1}, {" ", 2}, {"c", 3}, {"t", 4}, {"ab", 5}, {"aa", 6}}},
                        {"merges", nlohmann::json::parse(merges)}};
  tokenizer["added_tokens"] = nlohmann::json::parse(added_tokens);
  tokenizer.update(nlohmann::json::parse(overrides));
  return tokenizer.dump();
}

// ---- Shared tokenizers: facts a reader can check by eye -----------------------------------

TEST(ByteLevelBpe, HelloWorldSplitsIntoWordsWithTheSpaceOnTheSecond) {
  auto tok = load_or_fail(kShared / "models" / "sotu-gpt2");
  ASSERT_TRUE(tok);
  const auto ids = tok->encode("hello world", AddSpecial::No);
  const auto texts = token_texts(*tok, ids);
  ASSERT_GE(texts.size(), 2u);
  EXPECT_EQ(texts.back(), " world");  // a common word in the training text: one token
  EXPECT_EQ(tok->token_to_id("Ġworld"), ids.back());
  EXPECT_EQ(tok->decode(ids), "hello world");
}

TEST(ByteLevelBpe, EndOfTextIsMatchedAsOneSpecialToken) {
  auto tok = load_or_fail(kShared / "models" / "sotu-llama");
  ASSERT_TRUE(tok);
  ASSERT_TRUE(tok->eos_id().has_value());
  const int32_t eot = *tok->eos_id();
  EXPECT_EQ(tok->token_to_id("<|endoftext|>"), eot);
  EXPECT_TRUE(tok->is_special(eot));
  const auto ids = tok->encode("a<|endoftext|>b", AddSpecial::No);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], eot);
  EXPECT_EQ(tok->decode(ids), "a<|endoftext|>b");
  EXPECT_EQ(tok->decode(ids, /*skip_special=*/true), "ab");
  // These tokenizers add nothing around the text.
  EXPECT_EQ(tok->encode("a", AddSpecial::Yes), tok->encode("a", AddSpecial::No));
}

TEST(ByteLevelBpe, RoundTripsLongRealTextAndArbitraryBytes) {
  const std::string text = read_text(kShared / "data" / "text" / "sotu-test.txt", 400'000);
  ASSERT_GT(text.size(), 100'000u);
  for (const char* name : {"sotu-gpt2", "sotu-llama", "sotu-qwen2"}) {
    auto tok = load_or_fail(kShared / "models" / name);
    ASSERT_TRUE(tok);
    const auto ids = tok->encode(text, AddSpecial::No);
    EXPECT_LT(ids.size(), text.size() / 2) << name;  // BPE actually merged
    EXPECT_EQ(tok->decode(ids), text) << name;
    const std::string odd = "tab\tnul\x01 mixed \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80 end  ";
    EXPECT_EQ(tok->decode(tok->encode(odd, AddSpecial::No)), odd) << name;
  }
}

TEST(ByteLevelBpe, MultiMegabyteWhitespaceRunsNeitherAbortNorHang) {
  // Llama-3's Split regex (sotu-llama, sotu-qwen2) backtracks once per character of a whitespace
  // run in `\s*[\r\n]+`; past 10 million characters PCRE2's default match limit stopped it and
  // the process aborted. Spaces, tabs and U+00A0 are each \s.
  for (const std::string unit : {std::string(" "), std::string("\t"), std::string("\xC2\xA0")}) {
    std::string text = "before";
    const size_t run = 10'500'000;
    text.reserve(run * unit.size() + 16);
    for (size_t i = 0; i < run; ++i) text += unit;
    text += "after";
    for (const char* name : {"sotu-llama"}) {  // sotu-qwen2 has the same Split regex
      auto tok = load_or_fail(kShared / "models" / name);
      ASSERT_TRUE(tok);
      const auto ids = tok->encode(text, AddSpecial::No);
      EXPECT_EQ(tok->decode(ids), text) << name;
      // As on short runs, the last whitespace character joins the next word.
      const auto after = tok->encode(unit + "after", AddSpecial::No);
      ASSERT_GE(ids.size(), after.size());
      EXPECT_TRUE(std::equal(after.begin(), after.end(), ids.end() - after.size())) << name;
    }
  }
}

TEST(Regex, CatastrophicBacktrackingIsAnErrorNotAWrongSplit) {
  // A hostile tokenizer.json pattern: (a+)+$ tries 2^n ways to split a run of n a's before the
  // final mismatch. Leaving the text unsplit would change the ids silently; it throws instead.
  auto regex = Regex::compile("(a+)+$", "test");
  ASSERT_TRUE(regex);
  std::vector<Span> matches;
  EXPECT_THROW(regex->find_all(std::string(40, 'a') + "b", matches), RegexLimitError);
  // Linear patterns on long texts stay within the limit that grows with the text.
  auto linear = Regex::compile("\\s+(?!\\S)|\\s+", "test");
  ASSERT_TRUE(linear);
  matches.clear();
  linear->find_all(std::string(1 << 20, ' ') + "x", matches);
  EXPECT_FALSE(matches.empty());
}

TEST(ByteLevelBpe, InvalidUtf8InputIsRepairedNotRejected) {
  auto tok = load_or_fail(kShared / "models" / "sotu-gpt2");
  ASSERT_TRUE(tok);
  const auto ids = tok->encode("ok\xFF", AddSpecial::No);
  EXPECT_EQ(tok->decode(ids), "ok\xEF\xBF\xBD");
}

TEST(SentencePieceBpe, LegacyPrependsSpaceMarkerAndAddsBos) {
  auto tok = load_or_fail(kFixtures / "spm-bpe-legacy");
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  const auto plain = tok->encode("the", AddSpecial::No);
  const auto with_bos = tok->encode("the", AddSpecial::Yes);
  ASSERT_EQ(with_bos.size(), plain.size() + 1);
  EXPECT_EQ(with_bos.front(), 1);
  // "▁the": the normalizer's prepended marker starts the first word, and the decoder drops it.
  EXPECT_EQ(tok->token_bytes(plain.front(), 5).substr(0, 1), " ");
  EXPECT_EQ(tok->decode(plain), "the");
  EXPECT_EQ(tok->decode(with_bos, /*skip_special=*/true), "the");
}

TEST(SentencePieceBpe, ByteFallbackSpellsUnknownCharactersAsBytes) {
  auto tok = load_or_fail(kFixtures / "spm-bpe-legacy");
  ASSERT_TRUE(tok);
  const auto ids = tok->encode("\xE2\x82\xAC", AddSpecial::No);  // €, not in a 600-token vocab
  std::vector<int32_t> expected = {*tok->token_to_id("\xE2\x96\x81"), *tok->token_to_id("<0xE2>"),
                                   *tok->token_to_id("<0x82>"), *tok->token_to_id("<0xAC>")};
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(tok->token_bytes(expected[1], expected[0]), "\xE2");
  EXPECT_EQ(tok->decode(ids), "\xE2\x82\xAC");
}

TEST(SentencePieceBpe, WholeTextAsOneWordStaysFastAndRoundTrips) {
  // No pre-tokenizer: the whole text is a single BPE word, so the merge loop must not be
  // quadratic (a quadratic loop would take minutes here).
  auto tok = load_or_fail(kFixtures / "spm-bpe-legacy");
  ASSERT_TRUE(tok);
  const std::string text = read_text(kShared / "data" / "text" / "sotu-test.txt", 400'000);
  const auto ids = tok->encode(text, AddSpecial::No);
  EXPECT_LT(ids.size(), text.size());
  EXPECT_EQ(tok->decode(ids), text);
}

TEST(SentencePieceModel, LoadsTokenizerModelWhenNoJsonIsPresent) {
  auto tok = load_or_fail(kShared / "models" / "llama2-tokenizer");
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->is_special(1));
  EXPECT_FALSE(tok->is_special(100));
  const auto ids = tok->encode("Hello world", AddSpecial::Yes);
  // Llama 2's well-known ids: <s> ▁Hello ▁world.
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ(tok->token_bytes(15043, 1), "Hello");  // first text piece: dummy space dropped
  EXPECT_EQ(tok->token_bytes(3186, 15043), " world");
  EXPECT_EQ(tok->token_to_id("<0x0A>"), 13);
  EXPECT_EQ(tok->token_bytes(13, 15043), "\n");
  EXPECT_FALSE(tok->token_to_id("no-such-piece").has_value());
}

// ---- Streaming ------------------------------------------------------------------------------

TEST(Utf8Prefix, HoldsBackOnlyAnUnfinishedLastCharacter) {
  EXPECT_EQ(complete_utf8_prefix(""), 0u);
  EXPECT_EQ(complete_utf8_prefix("abc"), 3u);
  EXPECT_EQ(complete_utf8_prefix("a\xF0\x9F\x98"), 1u);      // 3 of 😀's 4 bytes
  EXPECT_EQ(complete_utf8_prefix("a\xF0\x9F\x98\x80"), 5u);  // complete
  EXPECT_EQ(complete_utf8_prefix("\xC3"), 0u);
  EXPECT_EQ(complete_utf8_prefix("x\x80"), 2u);   // a stray continuation byte never completes
  EXPECT_EQ(complete_utf8_prefix("x\xC3y"), 3u);  // broken in the middle: nothing to wait for
}

void expect_streams_cleanly(const Tokenizer& tok, const std::string& text) {
  const auto ids = tok.encode(text, AddSpecial::No);
  StreamDecoder stream(tok);
  std::string out;
  int held_back = 0;
  for (int32_t id : ids) {
    const std::string piece = stream.push(id);
    EXPECT_EQ(complete_utf8_prefix(piece), piece.size()) << "partial character emitted";
    held_back += piece.empty() ? 1 : 0;
    out += piece;
  }
  out += stream.flush();
  EXPECT_EQ(out, text);
  EXPECT_GT(held_back, 0) << "the emoji should have arrived in byte pieces";
}

TEST(StreamDecoder, ReassemblesAnEmojiSplitAcrossByteTokens) {
  const std::string text = "I like \xF0\x9F\x98\x80 and \xF0\x9F\x8E\x89!";  // 😀 🎉
  auto byte_level = load_or_fail(kShared / "models" / "sotu-gpt2");
  ASSERT_TRUE(byte_level);
  expect_streams_cleanly(*byte_level, text);
  auto byte_fallback = load_or_fail(kFixtures / "spm-bpe-legacy");
  ASSERT_TRUE(byte_fallback);
  expect_streams_cleanly(*byte_fallback, text);
}

TEST(StreamDecoder, FlushTurnsAnUnfinishedCharacterIntoReplacement) {
  auto tok = load_or_fail(kFixtures / "spm-bpe-legacy");
  ASSERT_TRUE(tok);
  StreamDecoder stream(*tok);
  EXPECT_EQ(stream.push(*tok->token_to_id("<0xF0>")), "");
  EXPECT_EQ(stream.push(*tok->token_to_id("<0x9F>")), "");
  EXPECT_EQ(stream.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(stream.flush(), "");
}

// ---- Synthetic tokenizer.json: merges, added-token flags ------------------------------------

TEST(BpeMerges, StringAndPairFormsAgreeAndLowestRankWins) {
  for (const char* merges : {R"(["a b", "a a"])", R"([["a", "b"], ["a", "a"]])"}) {
    ScratchDir dir;
    dir.write("tokenizer.json", tiny_tokenizer_json(merges, "[]"));
    auto tok = load_or_fail(dir.path());
    ASSERT_TRUE(tok);
    // "a b" outranks "a a": in "aab" the second a pairs with b first.
    EXPECT_EQ(tok->encode("aab", AddSpecial::No), (std::vector<int32_t>{0, 5})) << merges;
    EXPECT_EQ(tok->encode("aaab", AddSpecial::No), (std::vector<int32_t>{6, 5})) << merges;
    // Characters outside the vocabulary, with no <unk> and no byte fallback, are dropped, and
    // (as in Hugging Face) their neighbours then merge as if adjacent.
    EXPECT_EQ(tok->encode("axb", AddSpecial::No), (std::vector<int32_t>{5})) << merges;
  }
}

TEST(AddedTokens, LstripRstripAndSingleWordAreHonoured) {
  ScratchDir dir;
  dir.write("tokenizer.json", tiny_tokenizer_json("[]", R"([
      {"id": 10, "content": "<m>", "lstrip": true, "rstrip": false, "single_word": false,
       "normalized": false, "special": true},
      {"id": 11, "content": "[X]", "lstrip": false, "rstrip": true, "single_word": false,
       "normalized": false, "special": false},
      {"id": 12, "content": "cat", "lstrip": false, "rstrip": false, "single_word": true,
       "normalized": false, "special": false},
      {"id": 13, "content": "<mm>", "lstrip": false, "rstrip": false, "single_word": false,
       "normalized": false, "special": true}])"));
  auto tok = load_or_fail(dir.path());
  ASSERT_TRUE(tok);
  using Ids = std::vector<int32_t>;
  EXPECT_EQ(tok->encode("a  <m>b", AddSpecial::No), (Ids{0, 10, 1}));      // spaces before absorbed
  EXPECT_EQ(tok->encode("a [X]  b", AddSpecial::No), (Ids{0, 2, 11, 1}));  // spaces after absorbed
  EXPECT_EQ(tok->encode("a cat b", AddSpecial::No), (Ids{0, 2, 12, 2, 1}));
  EXPECT_EQ(tok->encode("acat", AddSpecial::No), (Ids{0, 3, 0, 4}));  // inside a word: no
  EXPECT_EQ(tok->encode("<mm><m>", AddSpecial::No), (Ids{13, 10}));   // longest match
  EXPECT_TRUE(tok->is_special(10));
  EXPECT_FALSE(tok->is_special(11));
  EXPECT_EQ(tok->vocab_size(), 14);
  EXPECT_EQ(tok->decode({0, 13, 1}, /*skip_special=*/true), "ab");
  EXPECT_EQ(tok->decode({0, 13, 1}), "a<mm>b");
}

TEST(AddedTokens, NormalizedTokensAreMatchedAfterNormalization) {
  ScratchDir dir;
  // The normalizer turns c into t, so the normalized token "ca" is looked for as "ta", while
  // the raw token "cb" is matched before normalization can change it.
  dir.write("tokenizer.json",
            tiny_tokenizer_json("[]", R"([{"id": 20, "content": "ca", "normalized": true},
                                         {"id": 21, "content": "cb", "normalized": false}])",
                                R"({"normalizer": {"type": "Replace", "pattern": {"String": "c"},
                                      "content": "t"}})"));
  auto tok = load_or_fail(dir.path());
  ASSERT_TRUE(tok);
  using Ids = std::vector<int32_t>;
  EXPECT_EQ(tok->encode("tab", AddSpecial::No), (Ids{20, 1}));
  EXPECT_EQ(tok->encode("cab", AddSpecial::No), (Ids{20, 1}));
  EXPECT_EQ(tok->encode("cbc", AddSpecial::No), (Ids{21, 4}));
}

TEST(TokenizerConfig, AddBosTokenAndObjectFormBosAreRead) {
  ScratchDir dir;
  dir.write("tokenizer.json", tiny_tokenizer_json("[]", R"([{"id": 7, "content": "<s>", "special": true},
                                         {"id": 8, "content": "</s>", "special": true}])"));
  dir.write("tokenizer_config.json",
            R"({"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>",
                "add_bos_token": true, "add_eos_token": true})");
  auto tok = load_or_fail(dir.path());
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->bos_id(), 7);
  EXPECT_EQ(tok->eos_id(), 8);
  EXPECT_EQ(tok->encode("ab", AddSpecial::Yes), (std::vector<int32_t>{7, 0, 1, 8}));
  EXPECT_EQ(tok->encode("ab", AddSpecial::No), (std::vector<int32_t>{0, 1}));
}

// ---- Errors name the file and the field -----------------------------------------------------

std::string load_error(const fs::path& dir) {
  auto result = Tokenizer::load(dir);
  EXPECT_FALSE(result.ok());
  return result.ok() ? "" : result.error().message;
}

TEST(TokenizerErrors, MissingFilesNameTheFolder) {
  ScratchDir dir;
  const std::string message = load_error(dir.path());
  EXPECT_NE(message.find(dir.path().string()), std::string::npos) << message;
  EXPECT_NE(message.find("tokenizer.json"), std::string::npos) << message;
}

TEST(TokenizerErrors, MalformedJsonNamesTheFile) {
  ScratchDir dir;
  dir.write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": )");
  const std::string message = load_error(dir.path());
  EXPECT_NE(message.find("tokenizer.json"), std::string::npos) << message;
  EXPECT_NE(message.find("invalid JSON"), std::string::npos) << message;
}

TEST(TokenizerErrors, UnsupportedComponentsNameTheField) {
  struct Case {
    std::string json;
    std::string field;
  };
  const std::vector<Case> cases = {
      {R"({"model": {"type": "Unigram", "vocab": []}})", "model.type"},
      {tiny_tokenizer_json("[]", "[]", R"({"pre_tokenizer": {"type": "UnicodeScripts"}})"),
       "pre_tokenizer.type"},
      {tiny_tokenizer_json("[]", "[]", R"({"decoder": {"type": "CTC"}})"), "decoder.type"},
      {tiny_tokenizer_json(R"(["a q"])", "[]"), "model.merges[0]"},
      {tiny_tokenizer_json("[]", "[]", R"({"pre_tokenizer": {"type": "Split",
         "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}})"),
       "pre_tokenizer.pattern"},
      {R"({"model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}})", "model.vocab"},
  };
  for (const Case& c : cases) {
    ScratchDir dir;
    dir.write("tokenizer.json", c.json);
    const std::string message = load_error(dir.path());
    EXPECT_NE(message.find("tokenizer.json: " + c.field), std::string::npos)
        << "expected '" << c.field << "' in: " << message;
  }
}

// Ids size the id -> token tables: an added token with id 2^31-1 overflowed id + 1 (UBSan, found
// by fuzz/tokenizer_fuzzer), a vocabulary id past int32 was silently truncated, and one of
// 2^30 asked for gigabytes. Every id in a tokenizer.json is bounded and its field named.
TEST(TokenizerErrors, TokenIdsOutOfRangeNameTheField) {
  const std::string template_with_id_past_int32 = R"({"post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "special_tokens": {"<s>": {"id": "<s>", "ids": [2147483648], "tokens": ["<s>"]}}}})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {tiny_tokenizer_json("[]", R"([{"id": 2147483647, "content": "<big>", "special": true}])"), "added_tokens[0].id"},
      {tiny_tokenizer_json("[]", R"([{"id": -1, "content": "<neg>", "special": true}])"), "added_tokens[0].id"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 4294967296}, "merges": []}})", "model.vocab: id of 'a'"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 1073741824}, "merges": []}})", "model.vocab: id of 'a'"},
      {R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "a": 2147483647}}})", "model.vocab: id of 'a'"},
      {tiny_tokenizer_json("[]", "[]", template_with_id_past_int32), "post_processor.special_tokens.<s>.ids"},
      {tiny_tokenizer_json("[]", "[]", R"({"post_processor": {"type": "BertProcessing", "cls": ["a", -5],
         "sep": ["b", 1]}})"), "post_processor.cls[1]"},
  };
  for (const auto& [json, field] : cases) {
    ScratchDir dir;
    dir.write("tokenizer.json", json);
    const std::string message = load_error(dir.path());
    EXPECT_NE(message.find("tokenizer.json: " + field), std::string::npos) << "expected '" << field << "' in: " << message;
    EXPECT_NE(message.find("expected a token id"), std::string::npos) << message;
  }
  ScratchDir dir;  // the largest id allowed still loads
  dir.write("tokenizer.json", tiny_tokenizer_json("[]", R"([{"id": 4194303, "content": "<last>", "special": true}])"));
  auto tok = Tokenizer::load(dir.path());
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  EXPECT_EQ(tok.value()->vocab_size(), 4194304);
}

TEST(TokenizerErrors, BadTokenizerConfigAndBadSentencePieceModel) {
  {
    ScratchDir dir;
    dir.write("tokenizer.json", tiny_tokenizer_json("[]", "[]"));
    dir.write("tokenizer_config.json", R"({"bos_token": "<nope>"})");
    const std::string message = load_error(dir.path());
    EXPECT_NE(message.find("tokenizer_config.json: bos_token"), std::string::npos) << message;
  }
  {
    ScratchDir dir;
    dir.write("tokenizer.model", "not a protobuf");
    const std::string message = load_error(dir.path());
    EXPECT_NE(message.find("tokenizer.model"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace brisk

namespace brisk {
namespace {

std::string normalized(const nlohmann::json& config, std::string text) {
  auto n = Normalizer::from_json(config, "normalizer");
  EXPECT_TRUE(n.ok()) << n.error().message;
  if (n.ok()) n->apply(text);
  return text;
}

// The Unicode normalization forms for real (utf8proc), on decomposed and compatibility input,
// with the results Python's unicodedata.normalize and Hugging Face tokenizers give.
TEST(Normalizer, UnicodeFormsLowercaseAndStripAccents) {
  const std::string decomposed = "Cafe\u0301 e\u0301te\u0301";  // e + COMBINING ACUTE ACCENT
  const std::string composed = "Caf\u00e9 \u00e9t\u00e9";
  EXPECT_EQ(normalized({{"type", "NFC"}}, decomposed), composed);
  EXPECT_EQ(normalized({{"type", "NFD"}}, composed), decomposed);
  EXPECT_EQ(normalized({{"type", "NFKC"}}, "\ufb01ne \u2460 \uff21\u00b2"), "fine 1 A2");  // ligature, circled, fullwidth
  EXPECT_EQ(normalized({{"type", "NFKD"}}, "\ufb01\u00e9"), "fie\u0301");
  EXPECT_EQ(normalized({{"type", "NFC"}}, "\u1100\u1161\u11a8"), "\uac01");  // Hangul jamo compose
  EXPECT_EQ(normalized({{"type", "NFD"}}, "\uac01"), "\u1100\u1161\u11a8");
  // BERT-style: NFD, Lowercase, StripAccents in a Sequence.
  const nlohmann::json bert = {{"type", "Sequence"},
                               {"normalizers", {{{"type", "NFD"}}, {{"type", "Lowercase"}}, {{"type", "StripAccents"}}}}};
  EXPECT_EQ(normalized(bert, "\u00c9COLE na\u00efve \u00c5ngstr\u00f6m \u0391\u0398\u0397\u039d\u0391"),
            "ecole naive angstrom \u03b1\u03b8\u03b7\u03bd\u03b1");
  // Invalid UTF-8 passes through untouched rather than being dropped or replaced.
  EXPECT_EQ(normalized({{"type", "NFC"}}, std::string("a\xff" "b")), std::string("a\xff" "b"));
  EXPECT_EQ(normalized({{"type", "Lowercase"}}, std::string("A\xff" "B")), std::string("a\xff" "b"));
  auto bad = Normalizer::from_json({{"type", "NFX"}}, "normalizer");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("NFX"), std::string::npos);
}

}  // namespace
}  // namespace brisk
