// The grammar engine (src/grammar): GBNF parsing, UTF-8 byte ranges, stack matching, token masks
// against a brute-force check, and JSON Schema compilation.
#include <gtest/gtest.h>

#include <random>

#include "grammar/grammar.h"
#include "grammar/json_schema.h"
#include "grammar/token_masks.h"

namespace brisk::grammar {
namespace {

// A vocabulary of the 256 single bytes, token b = byte b, plus an EOS token 256.
std::shared_ptr<const TokenVocabulary> byte_vocabulary() {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(std::string(1, char(b)));
  tokens.push_back("");  // EOS: no bytes
  return std::make_shared<TokenVocabulary>(tokens, std::vector<std::string>{}, std::vector<int32_t>{256});
}

std::shared_ptr<ConstrainedGrammar> compile(const std::string& gbnf,
                                            std::shared_ptr<const TokenVocabulary> vocab = byte_vocabulary()) {
  auto g = Grammar::parse(gbnf);
  EXPECT_TRUE(g.ok()) << (g.ok() ? "" : g.error().message);
  return std::make_shared<ConstrainedGrammar>(std::move(*g), std::move(vocab));
}

// Whether the grammar accepts `text` as a whole sentence, fed byte by byte.
bool matches(const std::shared_ptr<ConstrainedGrammar>& g, const std::string& text) {
  GrammarMatcher m(g);
  for (char c : text)
    if (!m.accept(int32_t(uint8_t(c)))) return false;
  return m.accept(256);
}

std::string parse_error(const std::string& gbnf) {
  auto g = Grammar::parse(gbnf);
  return g.ok() ? "" : g.error().message;
}

TEST(Grammar, ParsesAndMatches) {
  auto g = compile(R"(
    root ::= "{" ws pair ("," ws pair)* "}"   # comment
    pair ::= [a-z]+ ":" ws [0-9]{1,3}
    ws ::= [ \t\n]*
  )");
  EXPECT_TRUE(matches(g, "{a:1}"));
  EXPECT_TRUE(matches(g, "{ abc: 123,\n x:0}"));
  EXPECT_FALSE(matches(g, "{a:1234}"));
  EXPECT_FALSE(matches(g, "{a:1"));
  EXPECT_FALSE(matches(g, "{A:1}"));
  EXPECT_FALSE(matches(g, "{a:1}x"));
}

TEST(Grammar, RepetitionBounds) {
  auto g = compile("root ::= \"a\"{2,4} \"b\"? (\"cd\")+");
  EXPECT_FALSE(matches(g, "acd"));
  EXPECT_TRUE(matches(g, "aacd"));
  EXPECT_TRUE(matches(g, "aaaabcdcd"));
  EXPECT_FALSE(matches(g, "aaaaacd"));
  EXPECT_FALSE(matches(g, "aab"));
  auto exact = compile("root ::= [x]{3} | \"y\"{0}");
  EXPECT_TRUE(matches(exact, "xxx"));
  EXPECT_TRUE(matches(exact, ""));
  EXPECT_FALSE(matches(exact, "xx"));
}

TEST(Grammar, ClassesAreCodePointsSpelledInUtf8) {
  auto g = compile("root ::= [^\"\\\\]* \"\\\"\" .");
  EXPECT_TRUE(matches(g, "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80\"x"));
  EXPECT_TRUE(matches(g, "\"\xE4\xB8\xAD"));
  EXPECT_FALSE(matches(g, "\xC3\"x"));          // a lone lead byte is not a character
  EXPECT_FALSE(matches(g, "\xED\xA0\x80\"x"));  // a surrogate has no UTF-8 form
  EXPECT_FALSE(matches(g, "\xC0\xAF\"x"));      // overlong
  EXPECT_FALSE(matches(g, "a\\\"x"));
  auto escapes = compile(R"(root ::= "\x41\u00e9\n" [\u4e00-\u4e01])");
  EXPECT_TRUE(matches(escapes, "A\xC3\xA9\n\xE4\xB8\x80"));
  EXPECT_FALSE(matches(escapes, "A\xC3\xA9\n\xE4\xB8\x82"));
}

// Every code point in [lo, hi] has exactly one run that spells it, and none outside does.
TEST(Grammar, Utf8RangesAreExact) {
  auto spelled = [](const std::vector<std::vector<std::pair<uint8_t, uint8_t>>>& runs, uint32_t cp) {
    std::string s;
    if (cp < 0x80) s = std::string(1, char(cp));
    else if (cp < 0x800) s = {char(0xC0 | (cp >> 6)), char(0x80 | (cp & 63))};
    else if (cp < 0x10000) s = {char(0xE0 | (cp >> 12)), char(0x80 | ((cp >> 6) & 63)), char(0x80 | (cp & 63))};
    else s = {char(0xF0 | (cp >> 18)), char(0x80 | ((cp >> 12) & 63)), char(0x80 | ((cp >> 6) & 63)), char(0x80 | (cp & 63))};
    int hits = 0;
    for (const auto& run : runs) {
      if (run.size() != s.size()) continue;
      bool ok = true;
      for (size_t i = 0; i < s.size(); ++i) ok &= uint8_t(s[i]) >= run[i].first && uint8_t(s[i]) <= run[i].second;
      hits += ok;
    }
    return hits;
  };
  std::mt19937 rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    uint32_t lo = rng() % 0x110000, hi = rng() % 0x110000;
    if (trial % 4 == 0) hi = lo + rng() % 300;
    if (lo > hi) std::swap(lo, hi);
    hi = std::min<uint32_t>(hi, 0x10FFFF);
    const auto runs = utf8_byte_ranges(lo, hi);
    for (int k = 0; k < 2000; ++k) {
      const uint32_t cp = rng() % 0x110000;
      if (cp >= 0xD800 && cp <= 0xDFFF) continue;
      ASSERT_EQ(spelled(runs, cp), cp >= lo && cp <= hi ? 1 : 0) << std::hex << cp << " in " << lo << ".." << hi;
    }
    for (uint32_t cp : {lo, hi}) {
      if (cp < 0xD800 || cp > 0xDFFF) ASSERT_EQ(spelled(runs, cp), 1);
    }
  }
}

TEST(Grammar, ErrorsNameTheProblem) {
  EXPECT_NE(parse_error("").find("empty"), std::string::npos);
  EXPECT_NE(parse_error("start ::= \"a\"").find("no 'root' rule"), std::string::npos);
  EXPECT_NE(parse_error("root ::= item\n").find("'item' is used but never defined"), std::string::npos);
  EXPECT_NE(parse_error("root ::= root \"a\" | \"b\"").find("'root' is left-recursive"), std::string::npos);
  EXPECT_NE(parse_error("root ::= x \"a\"\nx ::= \"\" | root").find("left-recursive"), std::string::npos);
  EXPECT_NE(parse_error("root ::= \"a").find("never closed"), std::string::npos);
  EXPECT_NE(parse_error("root ::= [a").find("never closed"), std::string::npos);
  EXPECT_NE(parse_error("root ::= \"\\q\"").find("unknown escape"), std::string::npos);
  EXPECT_NE(parse_error("root ::= \"a\"{5,2}").find("n < m"), std::string::npos);
  EXPECT_NE(parse_error("root ::= \"a\"{99999}").find("above"), std::string::npos);
  // Limits that keep parsing and matching off deep native stacks, checked in linear time.
  EXPECT_NE(parse_error("root ::= " + std::string(300, '(') + "\"a\"" + std::string(300, ')')).find("nest more than"),
            std::string::npos);
  std::string chain = "root ::= r0\n";
  for (int i = 0; i < 1500; ++i) chain += "r" + std::to_string(i) + " ::= r" + std::to_string(i + 1) + " \"x\"\n";
  EXPECT_NE(parse_error(chain + "r1500 ::= \"y\"").find("rules deep"), std::string::npos);
  // 100,000 rules each nullable only through the next: a pass-per-rule fixpoint would be quadratic.
  std::string nullable = "root ::= n0 \"a\"\n";
  for (int i = 0; i < 100000; ++i) nullable += "n" + std::to_string(i) + " ::= n" + std::to_string(i + 1) + "\n";
  EXPECT_NE(parse_error(nullable + "n100000 ::= \"\"").find("rules deep"), std::string::npos);
  std::string huge = "root ::=";
  for (int i = 0; i < 300; ++i) huge += " \"a\"{4000}";
  EXPECT_NE(parse_error(huge).find("more than"), std::string::npos);
  EXPECT_NE(parse_error("root ::= (\"a\"").find("never closed"), std::string::npos);
  EXPECT_NE(parse_error("root ::= \"a\"\nroot ::= \"b\"").find("defined twice"), std::string::npos);
  EXPECT_NE(parse_error("root ::= [z-a]").find("reversed"), std::string::npos);
  EXPECT_NE(parse_error("root ::= \"a\" )").find("unexpected ')'"), std::string::npos);
}

TEST(Grammar, AmbiguityIsBoundedNotExponential) {
  // Each 'a' doubles the parses that differ in what they expect later.
  auto g = compile("root ::= x\nx ::= \"a\" x \"b\" | \"a\" x \"c\" | \"\"");
  GrammarMatcher m(g);
  int taken = 0;
  while (taken < 20 && m.accept('a')) ++taken;
  // Parses double per 'a' (2^k stacks, each with its open alternatives): refused past kMaxStacks.
  EXPECT_GE(taken, 8);
  EXPECT_LT(taken, 20);
  std::vector<uint32_t> words(size_t(g->vocabulary().mask_words()));
  m.allowed(words.data());
  EXPECT_FALSE((words['a' / 32] >> ('a' % 32)) & 1);
  EXPECT_TRUE((words['b' / 32] >> ('b' % 32)) & 1);
}

// The mask equals trying every token on its own, over a vocabulary of multi-byte tokens.
TEST(TokenMasks, EqualBruteForce) {
  std::mt19937 rng(3);
  const std::string alphabet = "{}[]\",:ab01 \\\xC3\xA9";
  std::vector<std::string> tokens;
  for (int i = 0; i < 600; ++i) {
    std::string t;
    const int len = 1 + int(rng() % 4);
    for (int k = 0; k < len; ++k) t += alphabet[rng() % alphabet.size()];
    tokens.push_back(t);
  }
  tokens.push_back("");  // EOS
  const int32_t eos = int32_t(tokens.size()) - 1;
  auto vocab = std::make_shared<TokenVocabulary>(tokens, std::vector<std::string>{}, std::vector<int32_t>{eos});
  auto schema = json_schema_gbnf(nlohmann::ordered_json::parse(
      R"({"type":"object","properties":{"a":{"type":"array","items":{"type":"integer"}},"b":{"type":"string"}},"required":["a"]})"));
  ASSERT_TRUE(schema.ok()) << schema.error().message;
  auto g = compile(*schema, vocab);
  for (int seed = 0; seed < 30; ++seed) {
    GrammarMatcher m(g);
    std::mt19937 draw(seed);
    std::vector<uint32_t> words(size_t(vocab->mask_words()));
    for (int step = 0; step < 40; ++step) {
      m.allowed(words.data());
      std::vector<int32_t> allowed;
      for (int32_t t = 0; t < vocab->size(); ++t) {
        GrammarMatcher probe = m;
        const bool ok = probe.accept(t);
        ASSERT_EQ(ok, bool((words[size_t(t) / 32] >> (t % 32)) & 1)) << "token '" << tokens[size_t(t)] << "' step " << step;
        if (ok) allowed.push_back(t);
      }
      ASSERT_FALSE(allowed.empty());
      const int32_t pick = allowed[draw() % allowed.size()];
      ASSERT_TRUE(m.accept(pick));
      if (pick == eos) break;
    }
  }
}

// What a grammar holds grows with the parse contexts outputs visit (GrammarCache retires a large
// one): an open-ended json_object meets new states with every nesting level.
TEST(TokenMasks, FootprintCountsStatesAndMasks) {
  auto g = compile(json_object_gbnf());
  const size_t before = g->footprint_bytes();
  GrammarMatcher m(g);
  std::vector<uint32_t> words(size_t(g->vocabulary().mask_words()));
  for (char c : std::string("{\"a\":") + std::string(200, '[')) {
    m.allowed(words.data());
    ASSERT_TRUE(m.accept(uint8_t(c)));
  }
  EXPECT_GT(g->footprint_bytes(), before + 200 * 256 * sizeof(StateId));
}

TEST(TokenMasks, FirstTokenUsesItsOwnSpelling) {
  // SentencePiece-style: " {" is written "{" when it starts the output.
  std::vector<std::string> later = {" {", "}", ""}, first = {"{", "}", ""};
  auto vocab = std::make_shared<TokenVocabulary>(later, first, std::vector<int32_t>{2});
  auto g = compile("root ::= \"{}\"", vocab);
  GrammarMatcher m(g);
  std::vector<uint32_t> words(1);
  m.allowed(words.data());
  EXPECT_EQ(words[0], 1u);  // only token 0
  ASSERT_TRUE(m.accept(0));
  m.allowed(words.data());
  EXPECT_EQ(words[0], 2u);
  ASSERT_TRUE(m.accept(1));
  m.allowed(words.data());
  EXPECT_EQ(words[0], 4u);  // EOS
  EXPECT_TRUE(m.finished());
}

std::string schema_error(const std::string& schema) {
  auto g = json_schema_gbnf(nlohmann::ordered_json::parse(schema));
  return g.ok() ? "" : g.error().message;
}

bool schema_matches(const std::string& schema, const std::string& text) {
  auto gbnf = json_schema_gbnf(nlohmann::ordered_json::parse(schema));
  EXPECT_TRUE(gbnf.ok()) << (gbnf.ok() ? "" : gbnf.error().message);
  return matches(compile(*gbnf), text);
}

TEST(JsonSchema, ObjectsRequiredAndOptionalInOrder) {
  const std::string s = R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
      "tags":{"type":"array","items":{"type":"string"},"minItems":1,"maxItems":2}},"required":["name"],
      "additionalProperties":false})";
  EXPECT_TRUE(schema_matches(s, R"({"name":"x"})"));
  EXPECT_TRUE(schema_matches(s, R"({"name": "x", "age": -12, "tags": ["a", "b"]})"));
  EXPECT_TRUE(schema_matches(s, "{ \"name\": \"\\u00e9\", \"tags\": [\"a\"] }"));
  EXPECT_FALSE(schema_matches(s, "{\n\"name\": \"x\"}"));  // at most one space between tokens
  EXPECT_FALSE(schema_matches(s, R"({"age":1})"));
  EXPECT_FALSE(schema_matches(s, R"({"name":"x","tags":[]})"));
  EXPECT_FALSE(schema_matches(s, R"({"name":"x","tags":["a","b","c"]})"));
  EXPECT_FALSE(schema_matches(s, R"({"name":"x","age":1.5})"));
  EXPECT_FALSE(schema_matches(s, R"({"name":"x","other":1})"));
  EXPECT_FALSE(schema_matches(s, R"({"name":"\ud800"})"));  // a lone surrogate escape
}

TEST(JsonSchema, EnumsConstsAnyOfRefsAndLengths) {
  const std::string s = R"({"$defs":{"node":{"type":"object","properties":{"v":{"enum":["a",1,null]},
      "kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"]}},
      "anyOf":[{"$ref":"#/$defs/node"},{"type":"string","minLength":2,"maxLength":3},{"const":[true]},
               {"type":["number","null"]}]})";
  EXPECT_TRUE(schema_matches(s, R"({"v":"a","kids":[{"v":1},{"v":null,"kids":[]}]})"));
  EXPECT_TRUE(schema_matches(s, R"("ab")"));
  EXPECT_TRUE(schema_matches(s, R"("\n\té")"));
  EXPECT_FALSE(schema_matches(s, R"("a")"));
  EXPECT_FALSE(schema_matches(s, R"("abcd")"));
  EXPECT_TRUE(schema_matches(s, R"([true])"));
  EXPECT_TRUE(schema_matches(s, R"(-0.5e+10)"));
  EXPECT_TRUE(schema_matches(s, R"(null)"));
  EXPECT_FALSE(schema_matches(s, R"({"v":"b"})"));
  EXPECT_FALSE(schema_matches(s, R"(01)"));
}

TEST(JsonSchema, FormatsAndAnyValue) {
  EXPECT_TRUE(schema_matches(R"({"type":"string","format":"date-time"})", R"("2026-12-06T11:53:53.5Z")"));
  EXPECT_FALSE(schema_matches(R"({"type":"string","format":"date"})", R"("2026-13-01")"));
  EXPECT_TRUE(schema_matches(R"({"format":"uuid"})", R"("123e4567-e89b-12d3-a456-426614174000")"));
  EXPECT_TRUE(schema_matches("{}", R"({"a":[1,{"b":null}],"c":"d"})"));
  EXPECT_TRUE(schema_matches(R"({"type":"object","additionalProperties":{"type":"integer"}})", R"({"x":1,"y":2})"));
  EXPECT_FALSE(schema_matches(R"({"type":"object","additionalProperties":{"type":"integer"}})", R"({"x":"1"})"));
  EXPECT_TRUE(schema_matches(R"({"type":"array","prefixItems":[{"type":"boolean"},{"type":"null"}],"items":false})",
                             "[true, null]"));
}

TEST(JsonSchema, RefusesWhatItCannotEnforce) {
  EXPECT_NE(schema_error(R"({"type":"string","pattern":"^a$"})").find("keyword 'pattern' is not supported"), std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"integer","minimum":0})").find("'minimum'"), std::string::npos);
  EXPECT_NE(schema_error(R"({"properties":{"a":{"uniqueItems":true}}})").find("#/properties/a"), std::string::npos);
  EXPECT_NE(schema_error(R"({"$ref":"http://x/y"})").find("only refs into this schema"), std::string::npos);
  EXPECT_NE(schema_error(R"({"$ref":"#/$defs/missing"})").find("points nowhere"), std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"string","format":"email"})").find("format \"email\""), std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"object","required":["a"]})").find("'a' has no schema"), std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"array","maxItems":100000})").find("above 1024"), std::string::npos);
  EXPECT_NE(schema_error(R"(false)").find("accepts no value"), std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"strin"})").find("unknown type 'strin'"), std::string::npos);
}

// Found by tests/grammar_validation_test.py (Python's date parser rejected them): the date rule
// let every month have 31 days and February 29 every year.
TEST(JsonSchema, DatesExist) {
  const std::string date = R"({"type":"string","format":"date"})";
  for (const char* ok : {R"("2024-02-29")", R"("2000-02-29")", R"("0400-02-29")", R"("1999-12-31")", R"("0001-01-01")",
                         R"("2023-04-30")", R"("2023-02-28")"})
    EXPECT_TRUE(schema_matches(date, ok)) << ok;
  for (const char* bad : {R"("2023-02-29")", R"("1900-02-29")", R"("2100-02-29")", R"("2024-02-30")",
                          R"("2023-04-31")", R"("2023-09-31")", R"("2023-11-31")", R"("0000-01-01")", R"("0000-02-29")"})
    EXPECT_FALSE(schema_matches(date, bad)) << bad;
  EXPECT_FALSE(schema_matches(R"({"type":"string","format":"date-time"})", R"("2023-06-31T00:00:00Z")"));
}

// A parser keeps the last of two equal keys: an additional member under a declared name would be
// judged by the additional schema, not the property's own.
TEST(JsonSchema, AdditionalKeysAreNeverDeclaredNames) {
  const std::string s = R"({"type":"object","properties":{"a":{"type":"integer"},"ab":{"type":"integer"}},
      "additionalProperties":{"type":"string"}})";
  EXPECT_TRUE(schema_matches(s, R"({"a":1,"x":"s"})"));
  EXPECT_TRUE(schema_matches(s, R"({"b":"s","abc":"t","":"u","ac":"v"})"));
  EXPECT_FALSE(schema_matches(s, R"({"a":"s"})"));
  EXPECT_FALSE(schema_matches(s, R"({"a":1,"a":"s"})"));
  EXPECT_FALSE(schema_matches(s, R"({"ab":"s"})"));
  EXPECT_FALSE(schema_matches(s, R"({"\u0061":"s"})"));  // the same name by an escape
  EXPECT_TRUE(schema_matches(s, R"({"x\u0061":"s"})"));   // escapes once the name has left the declared ones
  // propertyNames: bounded and listed keys; declared names it refuses are never written.
  const std::string bounded = R"({"properties":{"id":{"type":"integer"}},"propertyNames":{"maxLength":2},
      "additionalProperties":{"type":"boolean"}})";
  EXPECT_TRUE(schema_matches(bounded, R"({"id":1,"ok":true,"x":false})"));
  EXPECT_FALSE(schema_matches(bounded, R"({"abc":true})"));
  EXPECT_FALSE(schema_matches(bounded, R"({"id":true})"));
  const std::string listed = R"({"properties":{"a":{"type":"integer"},"long":{"type":"integer"}},
      "propertyNames":{"enum":["a","b",3]},"additionalProperties":{"type":"null"}})";
  EXPECT_TRUE(schema_matches(listed, R"({"a":1,"b":null})"));
  EXPECT_FALSE(schema_matches(listed, R"({"a":null})"));
  EXPECT_FALSE(schema_matches(listed, R"({"long":1})"));
  EXPECT_NE(schema_error(R"({"properties":{"abc":{}},"required":["abc"],"propertyNames":{"maxLength":2}})")
                .find("'abc' fails 'propertyNames'"), std::string::npos);
  EXPECT_NE(schema_error(R"({"propertyNames":{"pattern":"^a"}})").find("'pattern' is not supported"), std::string::npos);
}

// enum / const values the keywords beside them refuse are never written; keywords beside a
// combinator are refused rather than ignored.
TEST(JsonSchema, LiteralsObeyTheirSiblings) {
  const std::string s = R"({"type":"string","enum":["a","bcd",null,1],"maxLength":2})";
  EXPECT_TRUE(schema_matches(s, R"("a")"));
  EXPECT_FALSE(schema_matches(s, R"("bcd")"));
  EXPECT_FALSE(schema_matches(s, "null"));
  EXPECT_FALSE(schema_matches(s, "1"));
  EXPECT_TRUE(schema_matches(R"({"type":"integer","enum":[1.0,1.5]})", "1.0"));
  EXPECT_FALSE(schema_matches(R"({"type":"integer","enum":[1.0,1.5]})", "1.5"));
  EXPECT_NE(schema_error(R"({"type":"string","const":1})").find("accepts no value"), std::string::npos);
  EXPECT_NE(schema_error(R"({"enum":[[1]],"items":{"type":"string"}})").find("beside 'enum' / 'const' ('items')"),
            std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"string","anyOf":[{"maxLength":2},{"type":"integer"}]})")
                .find("keywords beside 'anyOf' ('type')"), std::string::npos);
}

// oneOf is exactly one: alternatives are sound only for branches no value can satisfy twice.
TEST(JsonSchema, OneOfOnlyWhenBranchesAreDisjoint) {
  EXPECT_NE(schema_error(R"({"oneOf":[{"type":"integer"},{"type":"number"}]})").find("may match the same value"),
            std::string::npos);
  EXPECT_NE(schema_error(R"({"oneOf":[{"type":"object","properties":{"a":{"type":"string"}}},{"type":"object"}]})")
                .find("branches 0 and 1"), std::string::npos);
  EXPECT_NE(schema_error(R"({"oneOf":[{"enum":["a","b"]},{"enum":["b","c"]}]})").find("may match"), std::string::npos);
  EXPECT_NE(schema_error(R"({"oneOf":[{"properties":{"n":{"type":"string"}}},{"type":"string"}]})").find("may match"),
            std::string::npos);  // an object schema without 'type' accepts strings too
  const std::string tagged = R"({"$defs":{"cat":{"type":"object","properties":{"kind":{"const":"cat"},"lives":{"type":"integer"}},
      "required":["kind"]},"dog":{"type":"object","properties":{"kind":{"enum":["dog","wolf"]}},"required":["kind"]}},
      "oneOf":[{"$ref":"#/$defs/cat"},{"$ref":"#/$defs/dog"},{"type":["string","null"]},{"enum":[1,2]},{"const":true}]})";
  EXPECT_TRUE(schema_matches(tagged, R"({"kind":"cat","lives":9})"));
  EXPECT_TRUE(schema_matches(tagged, R"({"kind":"wolf"})"));
  EXPECT_TRUE(schema_matches(tagged, R"(2)"));
  EXPECT_FALSE(schema_matches(tagged, R"(false)"));
}

TEST(JsonSchema, DeepSchemasAreRefusedNotRecursedInto) {
  std::string deep = "{}";
  for (int i = 0; i < 10000; ++i) deep = "{\"items\":" + deep + "}";
  EXPECT_NE(schema_error(deep).find("nests more than 64"), std::string::npos);
  // A huge declared name beside additionalProperties: the key trie would recurse per character.
  const std::string huge_key = std::string(100000, 'k');
  EXPECT_NE(schema_error(R"({"properties":{")" + huge_key + R"(":{}},"additionalProperties":true})").find("longer than 256"),
            std::string::npos);
}

TEST(JsonSchema, LiteralsEscape) {
  EXPECT_EQ(gbnf_literal("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\x01\"");
  EXPECT_TRUE(schema_matches(R"({"const":"quote \" and \\ and \u0001"})", R"("quote \" and \\ and \u0001")"));
}

}  // namespace
}  // namespace brisk::grammar
