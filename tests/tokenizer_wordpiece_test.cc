// WordPiece (BERT) tokenizers: the BertNormalizer's Unicode handling, BertPreTokenizer splits, the
// greedy WordPiece model, [CLS]/[SEP] and truncation, the WordPiece decoder, errors, and the GGUF
// "bert" vocabulary, on a small hand-made tokenizer.json; then exact agreement with Hugging Face
// on the golden fixture (tests/fixtures/golden/bert*) when it is present.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tokenizer/bert_normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/wordpiece_tokenizer.h"

namespace brisk {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<int32_t>;

const std::vector<std::string> kVocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]",  "[MASK]", "the",   "state",
                                         "cafe",  "deja",  "vu",    ",",      "!",      ".",     "中",
                                         "文",    "un",    "##aff", "##able", "hello",  "world", "a",
                                         "##a",   "'",     "s",     "it",     "—",      "$",     "5"};

// A tokenizer.json as transformers' BertTokenizer writes it, over kVocab.
json bert_json() {
  json vocab = json::object();
  for (size_t id = 0; id < kVocab.size(); ++id) vocab[kVocab[id]] = id;
  json added = json::array();
  for (int id = 0; id < 5; ++id) {
    added.push_back({{"id", id},
                     {"content", kVocab[id]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  json special = {{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}};
  json sep = {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 0}}}};
  json sequence = {{"Sequence", {{"id", "A"}, {"type_id", 0}}}};
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer",
           {{"type", "BertNormalizer"},
            {"clean_text", true},
            {"handle_chinese_chars", true},
            {"strip_accents", nullptr},
            {"lowercase", true}}},
          {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single", {special, sequence, sep}},
            {"special_tokens",
             {{"[CLS]", {{"id", "[CLS]"}, {"ids", {2}}, {"tokens", {"[CLS]"}}}},
              {"[SEP]", {{"id", "[SEP]"}, {"ids", {3}}, {"tokens", {"[SEP]"}}}}}}}},
          {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
          {"model",
           {{"type", "WordPiece"},
            {"unk_token", "[UNK]"},
            {"continuing_subword_prefix", "##"},
            {"max_input_chars_per_word", 100},
            {"vocab", vocab}}}};
}

// A scratch model folder, removed at the end of the test.
class ScratchDir {
 public:
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("brisk-wp-" + std::string(info->name()) + "-" + std::to_string(::getpid()));
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

Result<std::unique_ptr<Tokenizer>> load_json(const ScratchDir& dir, const json& tokenizer_json) {
  dir.write("tokenizer.json", tokenizer_json.dump());
  return Tokenizer::load(dir.path());
}

std::string normalize(const BertNormalizerOptions& options, std::string text) {
  apply_bert_normalizer(options, text);
  return text;
}

std::vector<std::string> bert_words(const std::string& text) {
  auto pre = PreTokenizer::from_json(json{{"type", "BertPreTokenizer"}}, "test");
  EXPECT_TRUE(pre.ok());
  std::vector<std::string> words;
  pre->split(text, true, [&](std::string_view w) { words.emplace_back(w); });
  return words;
}

TEST(BertNormalizer, StripsAccentsAndLowercasesLikeTokenizers) {
  const BertNormalizerOptions options;  // tokenizers' defaults: strip_accents follows lowercase
  EXPECT_EQ(normalize(options, "Café Déjà vu Ångström"), "cafe deja vu angstrom");
  EXPECT_EQ(normalize(options, "\xC4\xB0"), "i");             // İ: NFD is I + U+0307, dropped
  EXPECT_EQ(normalize(options, "\xE2\x84\xA6"), "\xCF\x89");  // Ω (ohm) -> Ω -> ω
  EXPECT_EQ(normalize(options, "\xCE\xA3\xCE\x91\xCE\xA3"), "\xCF\x83\xCE\xB1\xCF\x83");  // ΣΑΣ: no final ς
  EXPECT_EQ(normalize(options, "\xEF\xAC\x81"), "\xEF\xAC\x81");  // ﬁ: compatibility only, kept
  EXPECT_EQ(normalize(options, "\xED\x95\x9C"), "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB");  // 한 -> jamo
  EXPECT_EQ(normalize(options, "e\xCC\x81"), "e");  // already decomposed
  BertNormalizerOptions no_strip;
  no_strip.strip_accents = false;
  EXPECT_EQ(normalize(no_strip, "Café \xC4\xB0"), "caf\xC3\xA9 i\xCC\x87");  // full lowercase of İ
  BertNormalizerOptions cased;
  cased.lowercase = false;
  EXPECT_EQ(normalize(cased, "Café"), "Café");  // strip_accents null follows lowercase=false
}

TEST(BertNormalizer, CleansControlsAndSpacesCjk) {
  const BertNormalizerOptions options;
  // Cc and Cf go (U+0085, soft hyphen, zero-width space, BOM), as do NUL, U+FFFD and private use;
  // tab, newline and carriage return become spaces like every White_Space character.
  EXPECT_EQ(normalize(options, std::string("a\0b", 3)), "ab");
  EXPECT_EQ(normalize(options,
                      "a\xC2\x85"
                      "b\xC2\xAD"
                      "c\xE2\x80\x8B"
                      "d\xEF\xBB\xBF"
                      "e\xEF\xBF\xBD\xEE\x80\x80"),
            "abcde");
  EXPECT_EQ(normalize(options,
                      "a\tb\nc\r\nd\xC2\xA0"
                      "e\xE3\x80\x80"
                      "f"),
            "a b c  d e f");
  EXPECT_EQ(normalize(options, "\xCD\xB8"), "\xCD\xB8");  // unassigned U+0378 is not "other"
  EXPECT_EQ(normalize(options, "x中文y"), "x 中  文 y");
  // Extension E as tokenizers has it: from U+2B920, not Google BERT's U+2B820.
  EXPECT_EQ(normalize(options, "\xF0\xAB\xA4\xA0"), " \xF0\xAB\xA4\xA0 ");
  EXPECT_EQ(normalize(options, "\xF0\xAB\xA0\xA0"), "\xF0\xAB\xA0\xA0");
  BertNormalizerOptions raw;
  raw.clean_text = false;
  raw.handle_chinese_chars = false;
  EXPECT_EQ(normalize(raw, "A\tB中"), "a\tb中");
}

TEST(BertPreTokenizer, SplitsWhitespaceAndIsolatesPunctuation) {
  EXPECT_EQ(bert_words("Hey friend!     How are you?!?"),
            (std::vector<std::string>{"Hey", "friend", "!", "How", "are", "you", "?", "!", "?"}));
  // ASCII symbols count as punctuation, Unicode ones (Sm, So) do not; dashes (Pd) do.
  EXPECT_EQ(bert_words("$5 a\xE2\x80\x94"
                       "b x\xE2\x88\x9Ey"),
            (std::vector<std::string>{"$", "5", "a", "\xE2\x80\x94", "b", "x\xE2\x88\x9Ey"}));
  EXPECT_TRUE(bert_words(" \t\n ").empty());
}

TEST(WordPiece, EncodesGreedyLongestMatchFirst) {
  ScratchDir dir;
  auto loaded = load_json(dir, bert_json());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  const Tokenizer& tok = **loaded;
  EXPECT_EQ(tok.encode("Café Déjà vu", AddSpecial::No), (Ids{7, 8, 9}));
  EXPECT_EQ(tok.encode("a中文a", AddSpecial::No), (Ids{20, 13, 14, 20}));  // CJK split without spaces
  EXPECT_EQ(tok.encode("Hello,world!", AddSpecial::No), (Ids{18, 10, 19, 11}));
  EXPECT_EQ(tok.encode("unaffable", AddSpecial::No), (Ids{15, 16, 17}));   // "##" continuations
  EXPECT_EQ(tok.encode("xyz unxyz the", AddSpecial::No), (Ids{1, 1, 5}));  // a miss anywhere: [UNK]
  EXPECT_EQ(tok.encode("hello\tworld\xC2\xA0the\xE3\x80\x80state hel\xE2\x80\x8Blo", AddSpecial::No),
            (Ids{18, 19, 5, 6, 18}));
  Ids hundred(100, 21);
  hundred[0] = 20;
  EXPECT_EQ(tok.encode(std::string(100, 'a'), AddSpecial::No), hundred);
  EXPECT_EQ(tok.encode(std::string(101, 'a'), AddSpecial::No), (Ids{1}));  // over max_input_chars_per_word
  // Special tokens written in the text are matched whole, before normalization.
  EXPECT_EQ(tok.encode("[CLS] hello [MASK]world [cls]", AddSpecial::No), (Ids{2, 18, 4, 19, 1, 1, 1}));
  EXPECT_EQ(tok.encode("   ", AddSpecial::No), Ids{});
  EXPECT_EQ(tok.vocab_size(), static_cast<int32_t>(kVocab.size()));
  EXPECT_EQ(tok.token_to_id("##aff"), 16);
  EXPECT_TRUE(tok.is_special(3));
  EXPECT_FALSE(tok.is_special(5));
  EXPECT_EQ(tok.bos_id(), 2);  // the template's first token, as for BPE tokenizers
}

TEST(WordPiece, AddsSpecialsAndTruncatesThroughTheHelper) {
  ScratchDir dir;
  auto loaded = load_json(dir, bert_json());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  const auto* wp = dynamic_cast<const WordPieceTokenizer*>(loaded->get());
  ASSERT_NE(wp, nullptr);
  EXPECT_EQ(wp->encode("hello", AddSpecial::Yes), (Ids{2, 18, 3}));
  EXPECT_EQ(wp->encode("", AddSpecial::Yes), (Ids{2, 3}));
  // The caller's truncation to max_length = 5: 3 text ids, then [CLS] ... [SEP].
  Ids ids = wp->encode("the state, hello world", AddSpecial::No);
  ASSERT_EQ(ids, (Ids{5, 6, 10, 18, 19}));
  ASSERT_EQ(wp->special_token_count(), 2u);
  ids.resize(5 - wp->special_token_count());
  EXPECT_EQ(wp->add_special_tokens(ids), (Ids{2, 5, 6, 10, 3}));
}

TEST(WordPiece, DecodesGluingContinuationsAndCleaningUp) {
  ScratchDir dir;
  auto loaded = load_json(dir, bert_json());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  const Tokenizer& tok = **loaded;
  const Ids ids = {2, 15, 16, 17, 10, 18, 11, 12, 3};
  EXPECT_EQ(tok.decode(ids, /*skip_special=*/true), "unaffable, hello!.");
  EXPECT_EQ(tok.decode(ids), "[CLS] unaffable, hello!. [SEP]");
  // Cleanup works within one piece, as in tokenizers: " ' " never forms from "'" and "s".
  EXPECT_EQ(tok.decode({24, 22, 23}), "it ' s");
  EXPECT_EQ(tok.decode({16, 17}), "##affable");  // the first piece keeps its prefix
  StreamDecoder stream(tok);
  std::string streamed;
  for (int32_t id : ids) streamed += stream.push(id);
  EXPECT_EQ(streamed + stream.flush(), tok.decode(ids));
}

TEST(WordPiece, MalformedFilesNameFileAndField) {
  auto error_of = [](const json& j) {
    ScratchDir dir;
    auto loaded = load_json(dir, j);
    EXPECT_FALSE(loaded.ok());
    return loaded.ok() ? std::string() : loaded.error().message;
  };
  json no_vocab = bert_json();
  no_vocab["model"].erase("vocab");
  EXPECT_NE(error_of(no_vocab).find("tokenizer.json: model.vocab"), std::string::npos) << error_of(no_vocab);
  json no_unk = bert_json();
  no_unk["model"]["unk_token"] = "<unk>";
  EXPECT_NE(error_of(no_unk).find("model.unk_token: '<unk>' is not in"), std::string::npos)
      << error_of(no_unk);
  json bad_option = bert_json();
  bad_option["normalizer"]["nfkc"] = true;
  EXPECT_NE(error_of(bad_option).find("normalizer.nfkc: unknown BertNormalizer option"), std::string::npos);
  json bad_strip = bert_json();
  bad_strip["normalizer"]["strip_accents"] = "yes";
  EXPECT_NE(error_of(bad_strip).find("normalizer.strip_accents"), std::string::npos);
  json bad_decoder = bert_json();
  bad_decoder["decoder"]["cleanup"] = "no";
  EXPECT_NE(error_of(bad_decoder).find("decoder.cleanup"), std::string::npos);
}

// A GGUF file holding only metadata, written the way llama.cpp's converter lays out a BERT vocab.
class GgufMetadata {
 public:
  void string(const std::string& key, const std::string& value) {
    begin(key, 8);
    put_string(value);
  }
  void u32(const std::string& key, uint32_t value) {
    begin(key, 4);
    put(value);
  }
  void strings(const std::string& key, const std::vector<std::string>& values) {
    begin(key, 9);
    put<uint32_t>(8);
    put<uint64_t>(values.size());
    for (const auto& v : values) put_string(v);
  }
  void int32s(const std::string& key, const std::vector<int32_t>& values) {
    begin(key, 9);
    put<uint32_t>(5);
    put<uint64_t>(values.size());
    for (int32_t v : values) put(v);
  }
  std::string file() const {
    GgufMetadata header;
    header.put<uint32_t>(0x46554747);  // "GGUF"
    header.put<uint32_t>(3);
    header.put<uint64_t>(0);  // tensors
    header.put<uint64_t>(count_);
    return header.bytes_ + bytes_;
  }

 private:
  template <class T>
  void put(T v) {
    bytes_.append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    bytes_ += s;
  }
  void begin(const std::string& key, uint32_t type) {
    put_string(key);
    put(type);
    ++count_;
  }
  std::string bytes_;
  uint64_t count_ = 0;
};

TEST(WordPiece, LoadsGgufBertVocabulary) {
  // convert_hf_to_gguf.py: control tokens as they are, "##x" -> "x", any other piece -> "▁" + piece.
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (size_t id = 0; id < kVocab.size(); ++id) {
    const std::string& t = kVocab[id];
    types.push_back(id < 5 ? 3 : 1);
    tokens.push_back(id < 5 ? t : t.starts_with("##") ? t.substr(2) : "\xE2\x96\x81" + t);
  }
  GgufMetadata meta;
  meta.string("general.architecture", "bert");
  meta.string("tokenizer.ggml.model", "bert");
  meta.strings("tokenizer.ggml.tokens", tokens);
  meta.int32s("tokenizer.ggml.token_type", types);
  meta.u32("tokenizer.ggml.bos_token_id", 2);
  meta.u32("tokenizer.ggml.seperator_token_id", 3);
  meta.u32("tokenizer.ggml.unknown_token_id", 1);
  ScratchDir dir;
  const fs::path gguf = dir.path() / "bert.gguf";
  dir.write("bert.gguf", meta.file());
  auto from_gguf = Tokenizer::load(gguf);
  ASSERT_TRUE(from_gguf.ok()) << from_gguf.error().message;
  auto from_json = load_json(dir, bert_json());
  ASSERT_TRUE(from_json.ok()) << from_json.error().message;
  for (const std::string text : {"Café Déjà vu, unaffable!", "[CLS] a中文a xyz", "aaa hello\tworld"}) {
    const Ids ids = (*from_json)->encode(text, AddSpecial::Yes);
    EXPECT_EQ((*from_gguf)->encode(text, AddSpecial::Yes), ids) << text;
    EXPECT_EQ((*from_gguf)->decode(ids, true), (*from_json)->decode(ids, true)) << text;
  }
}

// Exact agreement with Hugging Face (transformers' BertTokenizer over tokenizers) on the golden
// fixture, generated by scripts/golden/make_family_fixtures.py.
TEST(WordPieceGolden, MatchesHuggingFace) {
  const fs::path golden = fs::path(BRISK_FIXTURES_DIR) / "golden";
  const fs::path cases_file = golden / "bert-wordpiece.json";
  if (!fs::exists(golden / "bert" / "tokenizer.json") || !fs::exists(cases_file)) {
    GTEST_SKIP() << "no golden BERT tokenizer fixture at " << golden;
  }
  auto loaded = Tokenizer::load(golden / "bert");
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  const auto* wp = dynamic_cast<const WordPieceTokenizer*>(loaded->get());
  ASSERT_NE(wp, nullptr) << "bert/tokenizer.json did not load as WordPiece";
  std::ifstream in(cases_file);
  const json expected = json::parse(in);
  const size_t max_length = expected.at("max_length").get<size_t>();
  ASSERT_GE(expected.at("cases").size(), 12u);
  for (const json& c : expected.at("cases")) {
    const std::string text = c.at("text");
    const Ids ids = wp->encode(text, AddSpecial::No);
    EXPECT_EQ(ids, c.at("ids").get<Ids>()) << "encode: " << text;
    const Ids ids_special = wp->encode(text, AddSpecial::Yes);
    EXPECT_EQ(ids_special, c.at("ids_special").get<Ids>()) << "encode with specials: " << text;
    Ids truncated = ids;
    truncated.resize(std::min(truncated.size(), max_length - wp->special_token_count()));
    EXPECT_EQ(wp->add_special_tokens(truncated), c.at("ids_truncated").get<Ids>()) << "truncated: " << text;
    const Ids recorded = c.at("ids_special").get<Ids>();
    EXPECT_EQ(wp->decode(recorded, /*skip_special=*/true), c.at("decoded").get<std::string>())
        << "decode: " << text;
  }
}

}  // namespace
}  // namespace brisk
