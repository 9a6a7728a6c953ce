#include "tokenizer/gguf_pre_tokenizers.h"

#include <nlohmann/json.hpp>

namespace brisk::gguf_pre {
namespace {

// Sources. Names and flags: llama.cpp src/llama-vocab.cpp, llama_vocab::impl::load() (the
// tokenizer_pre -> LLAMA_VOCAB_PRE_TYPE_* chain, with ignore_merges / add_bos set there).
// Regexes: the same file, llm_tokenizer_bpe's switch assigning regex_exprs per type. Where
// llama.cpp quotes the "original regex from tokenizer.json" and only rewrote it because
// std::regex lacks (?i:...) or \p{Lu}, the original is used (PCRE2 has both); otherwise its
// string is used as written. Non-ASCII characters inside classes are spelled \x{...} (the same
// code points as llama.cpp's literal characters) so that no editor or normalizer can change them.
// Every Split is Isolated, as llama.cpp's unicode_regex_split keeps both matches and gaps.

// GPT-2's word regex as llama.cpp lists it (without GPT-2's final `|\s+`; gaps left by the other
// alternatives are whitespace runs and are kept as pieces anyway).
constexpr std::string_view kGpt2 =
    R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))re";

// LLAMA_VOCAB_PRE_TYPE_LLAMA3, original regex from tokenizer.json (llama.cpp's comment).
constexpr std::string_view kLlama3 =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// LLAMA_VOCAB_PRE_TYPE_JAIS2, original regex from tokenizer.json.
constexpr std::string_view kJais2 =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1})re";

// LLAMA_VOCAB_PRE_TYPE_QWEN2 (also STABLELM2, HUNYUAN, SOLAR_OPEN; GROK_2's original is the same
// string), original regex from tokenizer.json.
constexpr std::string_view kQwen2 =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// LLAMA_VOCAB_PRE_TYPE_QWEN35, original regex from tokenizer.json.
constexpr std::string_view kQwen35 =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// LLAMA_VOCAB_PRE_TYPE_GPT4O (and MINIMAX_M2; TINY_AYA's second regex), original from tokenizer.json.
constexpr std::string_view kGpt4o =
    R"re([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// LLAMA_VOCAB_PRE_TYPE_TEKKEN, original regex from tokenizer.json.
constexpr std::string_view kTekken =
    R"re([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// LLAMA_VOCAB_PRE_TYPE_DEEPSEEK_LLM: letters of cased scripts, written as code point ranges.
constexpr std::string_view kDeepseekLetters =
    R"re(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF})re"
    R"re(\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1})re"
    R"re(\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5})re"
    R"re(\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A})re"
    R"re(\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B})re"
    R"re(\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC})re"
    R"re(\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107})re"
    R"re(\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134})re"
    R"re(\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})re"
    R"re(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787})re"
    R"re(\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A})re"
    R"re(\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2})re"
    R"re(\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)re";
// DEEPSEEK_LLM / DEEPSEEK_CODER: CJK ideographs (U+4E00..U+9FA5), U+0800..U+4E00, Hangul.
constexpr std::string_view kDeepseekCjk = R"re([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)re";

// DEEPSEEK3_LLM / SPARK2_5: CJK ideographs, Hiragana, Katakana.
constexpr std::string_view kCjkKana = R"re([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)re";
constexpr std::string_view kDeepseek3Words =
    R"re([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// PORO / BLOOM / GPT3_FINNISH (and VIKING's first regex). Hugging Face's tokenizer.json nests a
// class, `[^(\s|[.,!?…。，、।۔،])]`, which Oniguruma reads as a union but PCRE2 does not;
// llama.cpp's flattened spelling (used here) names the same characters.
constexpr std::string_view kBloom =
    R"re( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{964}\x{6D4}\x{60C})]+)re";

// KIMI_K2: llama.cpp runs a hand-written splitter for Kimi-K2's tiktoken pattern, whose classes
// use `&&[^\p{Han}]` intersections (Oniguruma/fancy-regex syntax that PCRE2 10.42 lacks). Here
// each intersected class C&&[^\p{Han}] is written (?:(?!\p{Han})C), which matches the same
// characters.
constexpr std::string_view kKimiK2 =
    R"re(\p{Han}+|[^\r\n\p{L}\p{N}]?(?:(?!\p{Han})[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}])*(?:(?!\p{Han})[\p{Ll}\p{Lm}\p{Lo}\p{M}])+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)re"
    R"re(|[^\r\n\p{L}\p{N}]?(?:(?!\p{Han})[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}])+(?:(?!\p{Han})[\p{Ll}\p{Lm}\p{Lo}\p{M}])*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)re"
    R"re(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// AFMOE: llama.cpp's custom `\p{AFMoE_digits}` splits a run of numbers into groups of three
// counted from the right (the leading group has 1-3); this regex does the same.
constexpr std::string_view kAfmoeDigits = R"re(\p{N}{1,3}(?=(?:\p{N}{3})*(?!\p{N})))re";
constexpr std::string_view kAfmoeScripts =
    R"re([\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{F900}-\x{FAFF}\x{3040}-\x{309F}\x{30A0}-\x{30FF}\x{FF65}-\x{FF9F})re"
    R"re(\x{2F00}-\x{2FDF}\x{E00}-\x{E7F}\x{E80}-\x{EFF}\x{1780}-\x{17FF}\x{1000}-\x{109F}\x{AA60}-\x{AA7F})re"
    R"re(\x{A9E0}-\x{A9FF}\x{AC00}-\x{D7AF}\x{1100}-\x{11FF}]+)re";

// YOUTU and LAGUNA: llama.cpp quotes no original, so its spelling of the contractions is kept.

constexpr std::string_view kYoutuScripts =
    R"re([\x{AC00}-\x{D7A3}\x{3131}-\x{318E}]+|[\x{FF01}\x{2026}\x{201C}\x{201D}\x{2018}\x{2019}\x{2014}\x{FF1A}\x{FF1B}\x{FF0C}\x{3001}-\x{303F}\x{FE30}-\x{FE4F}]+)re"
    R"re(|[\x{3105}-\x{312F}]+|[\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)re";
constexpr std::string_view kYoutuWords =
    R"re([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

constexpr std::string_view kLagunaWords =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

const std::vector<Row>& table() {
  using enum WholeWords;
  static const std::vector<Row> rows = {
      // GPT2, MPT, OLMO, JAIS, TRILLION, GRANITE_DOCLING: GPT-2's regex, i.e. ByteLevel's own.
      {.names = {"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
                 "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "exaone4", "mpt",
                 "olmo", "jais", "trillion", "granite-docling"},
       .regexes = {}},
      // DEFAULT: also what llama.cpp uses when tokenizer.ggml.pre is missing.
      {.names = {"default"},
       .regexes = {R"re([\p{P}\$\+<=>\^~\|]+)re", kGpt2, R"re(\p{N}+)re", R"re([0-9][0-9][0-9])re"}},
      {.names = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                 "jina-v5-nano"},
       .regexes = {kLlama3},
       .whole_words = TakeIfInVocab,
       .add_bos_by_default = true},
      // DBRX, SMAUG ("same as llama3") and CHATGLM4 (llama.cpp's (?:'[sS]...) spelling of it).
      {.names = {"dbrx", "smaug-bpe", "chatglm-bpe", "glm4"}, .regexes = {kLlama3}},
      {.names = {"jais-2"}, .regexes = {kJais2}},
      {.names = {"deepseek-llm"},
       .regexes = {R"re([\r\n])re", kDeepseekLetters,
                   R"re(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)re",
                   R"re(\s+$)re", kDeepseekCjk, R"re(\p{N}+)re"}},
      {.names = {"deepseek-coder"},
       .regexes = {R"re([\r\n])re", R"re(\s?\p{L}+)re", R"re(\s?\p{P}+)re", kDeepseekCjk, R"re(\p{N})re"}},
      // DEEPSEEK3_LLM, HUNYUAN_DENSE, JOYAI_LLM, HY_V4.
      {.names = {"deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4"},
       .regexes = {R"re(\p{N}{1,3})re", kCjkKana, kDeepseek3Words}},
      {.names = {"spark2_5"},
       .regexes =
           {R"re(\p{N}{1,3})re", kCjkKana,
            R"re([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+|[\r\n]|\s+(?!\S)|\s+)re",
            R"re(\p{N})re"}},
      {.names = {"youtu"}, .regexes = {kYoutuScripts, kYoutuWords}, .whole_words = TakeIfInVocab},
      {.names = {"falcon"}, .regexes = {R"re([\p{P}\$\+<=>\^~\|`]+)re", kGpt2, R"re([0-9][0-9][0-9])re"}},
      // STARCODER, REFACT, COMMAND_R, SMOLLM, CODESHELL, EXAONE, MINERVA, MELLUM2: digits one by one.
      {.names = {"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b",
                 "mellum2"},
       .regexes = {R"re(\p{N})re", kGpt2}},
      {.names = {"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan",
                 "solar-open", "grok-2"},
       .regexes = {kQwen2}},
      {.names = {"qwen35"}, .regexes = {kQwen35}},
      {.names = {"poro-chat", "bloom", "gpt3-finnish"}, .regexes = {kBloom}},
      {.names = {"viking"}, .regexes = {kBloom, R"re(\p{N})re"}},
      {.names = {"tekken"}, .regexes = {kTekken}, .whole_words = TakeIfInVocab, .add_bos_by_default = true},
      {.names = {"chameleon"},
       .regexes = {R"re(<sentinel:[0-9]+>)re", R"re((IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z)re",
                   R"re(([\t\n]|    |  ))re", R"re(\p{N})re", R"re([\p{P}!-/:-@\[-`{-~])re", kGpt2},
       .add_bos_by_default = true},
      {.names = {"gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"}, .regexes = {kGpt4o}},
      // GRANITE_EMB_MULTI: llama.cpp adapts the GPT-4o regex (adding \p{M} to its lookahead
      // rewrite); the original, which PCRE2 runs as is, already lets marks join letters.
      {.names = {"granite-embed-multi-97m"}, .regexes = {kGpt4o}, .whole_words = TakeIfInVocab},
      {.names = {"tiny_aya", "cohere2moe"}, .regexes = {R"re(\d{1,3}(?=(?:\d{3})*\b))re", kGpt4o}},
      {.names = {"kimi-k2"}, .regexes = {kKimiK2}},
      {.names = {"superbpe"}, .regexes = {R"re(\p{N}+)re", R"re((?=(\d{3})+(?!\d)))re"}},
      // BAILINGMOE, original regex from tokenizer.json (llama.cpp drops the possessive
      // quantifiers, which std::regex lacks and PCRE2 has).
      {.names = {"bailingmoe", "bailingmoe2", "llada-moe"},
       .regexes =
           {R"re('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)re"}},
      {.names = {"seed-coder"},
       .regexes =
           {R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)re"}},
      {.names = {"ufakzeka"},
       .regexes =
           {R"re([^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"}},
      {.names = {"afmoe"}, .regexes = {kAfmoeDigits, kAfmoeScripts, kDeepseek3Words}},
      {.names = {"laguna"}, .regexes = {R"re([^\n]+|[\n]+)re", kLagunaWords}},
      {.names = {"exaone-moe"},
       .regexes =
           {R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+)re"}},
      {.names = {"minicpm5"},
       .regexes =
           {R"re(\p{N}{1,3})re",
            R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"},
       .whole_words = TakeIfInVocab},
  };
  return rows;
}

}  // namespace

std::span<const Row> rows() { return table(); }

const Row* find(std::string_view name) {
  for (const Row& row : table()) {
    for (std::string_view n : row.names) {
      if (n == name) return &row;
    }
  }
  return nullptr;
}

std::string known_names() {
  std::string out;
  for (const Row& row : table()) {
    for (std::string_view n : row.names) {
      if (!out.empty()) out += ", ";
      out += n;
    }
  }
  return out;
}

nlohmann::json pre_tokenizer_json(const Row& row) {
  using nlohmann::json;
  if (row.regexes.empty()) return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  json steps = json::array();
  for (std::string_view regex : row.regexes) {
    steps.push_back({{"type", "Split"},
                     {"pattern", {{"Regex", std::string(regex)}}},
                     {"behavior", "Isolated"},
                     {"invert", false}});
  }
  steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}});
  return {{"type", "Sequence"}, {"pretokenizers", std::move(steps)}};
}

}  // namespace brisk::gguf_pre
