#include "tokenizer/gguf_tokenizer.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "formats/gguf.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/gguf_pre_tokenizers.h"
#include "tokenizer/utf8.h"
#include "tokenizer/wordpiece_tokenizer.h"

namespace brisk {
namespace {

using nlohmann::json;


// The pre-tokenizer named by tokenizer.ggml.pre; llama.cpp falls back to "default" without it.
Result<const gguf_pre::Row*> pre_tokenizer_row(const GgufFile& f, const std::string& where) {
  BRISK_ASSIGN(name, f.optional_string("tokenizer.ggml.pre"));
  const std::string pre = name.value_or("default");
  if (const gguf_pre::Row* row = gguf_pre::find(pre)) return row;
  // llama.cpp's SentencePiece-style BPE types run merges on raw UTF-8 with spaces escaped as U+2581.
  if (pre == "gemma4" || pre == "granite-embed-multi-311m" || pre == "sarvam-moe" || pre == "whitespace")
    return make_error(where + "tokenizer.ggml.pre: pre-tokenizer '" + pre +
                      "' (BPE on raw UTF-8, not byte-level) is not supported");
  return make_error(where + "tokenizer.ggml.pre: pre-tokenizer '" + pre + "' is not supported (supported: " +
                    gguf_pre::known_names() + ")");
}

// Control and user-defined tokens are matched whole before BPE, as tokenizer.json's added_tokens.
json added_tokens(const std::vector<std::string>& tokens, const std::vector<int64_t>* types) {
  json added = json::array();
  if (!types) return added;
  for (size_t id = 0; id < tokens.size(); ++id) {
    const int64_t t = (*types)[id];
    if (t != gguf_token::kControl && t != gguf_token::kUserDefined && t != gguf_token::kUnknown) continue;
    added.push_back({{"id", id}, {"content", tokens[id]}, {"special", t != gguf_token::kUserDefined}, {"normalized", false}});
  }
  return added;
}

json vocab_object(const std::vector<std::string>& tokens) {
  json vocab = json::object();
  for (size_t id = 0; id < tokens.size(); ++id) vocab[tokens[id]] = id;  // a repeated spelling keeps its last id
  return vocab;
}

Result<json> gpt2_tokenizer_json(const GgufFile& f, const std::vector<std::string>& tokens,
                                 const std::vector<int64_t>* types, const gguf_pre::Row& pre) {
  BRISK_ASSIGN(merges, f.strings("tokenizer.ggml.merges"));
  json merge_list = json::array();
  for (const std::string& m : *merges) merge_list.push_back(m);  // "left right", as older tokenizer.json
  json model = {{"type", "BPE"}, {"vocab", vocab_object(tokens)}, {"merges", std::move(merge_list)},
                {"ignore_merges", pre.whole_words == gguf_pre::WholeWords::TakeIfInVocab}};
  return json{{"model", std::move(model)},
              {"pre_tokenizer", gguf_pre::pre_tokenizer_json(pre)},
              {"decoder", {{"type", "ByteLevel"}}},
              {"added_tokens", added_tokens(tokens, types)}};
}

// SentencePiece BPE merges the adjacent pair whose joined piece scores highest. Hugging Face's
// converter turns that into merge ranks: every split of a piece into two pieces is a merge,
// ranked by the joined piece's score (then id).
std::vector<std::string> merges_from_scores(const std::vector<std::string>& tokens, const std::vector<double>& scores,
                                            const std::vector<int64_t>* types) {
  std::unordered_map<std::string, size_t> ids;
  for (size_t i = 0; i < tokens.size(); ++i) ids.emplace(tokens[i], i);
  struct Candidate {
    double score;
    size_t merged, left;
    std::string text;
  };
  std::vector<Candidate> candidates;
  for (size_t id = 0; id < tokens.size(); ++id) {
    if (types && (*types)[id] != gguf_token::kNormal) continue;
    const std::string& t = tokens[id];
    for (size_t cut = 1; cut < t.size(); ++cut) {
      if ((static_cast<unsigned char>(t[cut]) & 0xC0) == 0x80) continue;  // inside a UTF-8 character
      auto l = ids.find(t.substr(0, cut)), r = ids.find(t.substr(cut));
      if (l == ids.end() || r == ids.end()) continue;
      candidates.push_back({scores[id], id, l->second, t.substr(0, cut) + " " + t.substr(cut)});
    }
  }
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.merged != b.merged ? a.merged < b.merged : a.left < b.left;
  });
  std::vector<std::string> merges;
  merges.reserve(candidates.size());
  for (auto& c : candidates) merges.push_back(std::move(c.text));
  return merges;
}

Result<json> llama_tokenizer_json(const GgufFile& f, const std::vector<std::string>& tokens,
                                  const std::vector<int64_t>* types, const std::string& where) {
  BRISK_ASSIGN(scores, f.floats("tokenizer.ggml.scores"));
  if (scores->size() != tokens.size())
    return make_error(where + "tokenizer.ggml.scores has " + std::to_string(scores->size()) + " entries for " +
                      std::to_string(tokens.size()) + " tokens");
  BRISK_ASSIGN(unk, f.optional_integer("tokenizer.ggml.unknown_token_id"));
  // Merges are written as pairs: SentencePiece pieces may contain spaces only as "▁".
  json merge_list = json::array();
  for (const std::string& m : merges_from_scores(tokens, *scores, types)) merge_list.push_back(m);
  json model = {{"type", "BPE"}, {"vocab", vocab_object(tokens)}, {"merges", std::move(merge_list)},
                {"byte_fallback", true}, {"fuse_unk", true}};
  if (unk && *unk >= 0 && size_t(*unk) < tokens.size()) model["unk_token"] = tokens[size_t(*unk)];
  const std::string space = "\xe2\x96\x81";  // "▁", SentencePiece's visible space
  json normalizer = {{"type", "Sequence"},
                     {"normalizers",
                      {{{"type", "Prepend"}, {"prepend", space}},
                       {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", space}}}}};
  json decoder = {{"type", "Sequence"},
                  {"decoders",
                   {{{"type", "Replace"}, {"pattern", {{"String", space}}}, {"content", " "}},
                    {{"type", "ByteFallback"}},
                    {{"type", "Fuse"}},
                    {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  return json{{"model", std::move(model)},
              {"normalizer", std::move(normalizer)},
              {"pre_tokenizer", nullptr},
              {"decoder", std::move(decoder)},
              {"added_tokens", added_tokens(tokens, types)}};
}

// llama.cpp's convert_hf_to_gguf.py (BertModel.set_vocab) respells a WordPiece vocabulary the
// SentencePiece way: word-initial pieces gain a leading U+2581, continuations lose their "##",
// control tokens stay as they are (older converters kept every "[...]" token as it was). Undoing
// that gives back the tokenizer.json spellings, so the WordPiece model runs unchanged.
std::string wordpiece_spelling(const std::string& token, int64_t type) {
  static constexpr std::string_view kWordStart = "\xe2\x96\x81";
  if (type == gguf_token::kControl) return token;
  if (token.starts_with(kWordStart)) return token.substr(kWordStart.size());
  if (token.size() >= 2 && token.front() == '[' && token.back() == ']') return token;
  return "##" + token;
}

// The "bert" vocabulary as a BERT tokenizer.json. GGUF keeps no do_lower_case; like llama.cpp
// (whose WPM tokenizer always lowercases) this assumes an uncased model, the usual case for the
// embedding models converted to GGUF. The text is wrapped in CLS ... SEP, as llama.cpp does.
Result<std::unique_ptr<WordPieceTokenizer>> bert_tokenizer(const GgufFile& f,
                                                           const std::vector<std::string>& tokens,
                                                           const std::vector<int64_t>* types,
                                                           const std::string& path,
                                                           const std::string& where) {
  std::vector<std::string> spelled(tokens.size());
  for (size_t id = 0; id < tokens.size(); ++id) {
    spelled[id] = wordpiece_spelling(tokens[id], types ? (*types)[id] : int64_t{gguf_token::kNormal});
  }
  // Special tokens by id key, else by their usual spelling.
  auto special = [&](std::initializer_list<const char*> keys, const char* spelling) -> Result<int64_t> {
    for (const char* key : keys) {
      BRISK_ASSIGN(id, f.optional_integer(key));
      if (!id) continue;
      if (*id < 0 || size_t(*id) >= tokens.size())
        return make_error(where + key + " = " + std::to_string(*id) + " is not a token id");
      return *id;
    }
    const auto it = std::find(spelled.begin(), spelled.end(), spelling);
    if (it == spelled.end())
      return make_error(where + *keys.begin() + ": missing, and no token is spelled " + spelling);
    return int64_t(it - spelled.begin());
  };
  BRISK_ASSIGN(cls, special({"tokenizer.ggml.cls_token_id", "tokenizer.ggml.bos_token_id"}, "[CLS]"));
  BRISK_ASSIGN(sep, special({"tokenizer.ggml.seperator_token_id"}, "[SEP]"));
  BRISK_ASSIGN(unk, special({"tokenizer.ggml.unknown_token_id"}, "[UNK]"));
  json model = {{"type", "WordPiece"},
                {"vocab", vocab_object(spelled)},
                {"unk_token", spelled[size_t(unk)]},
                {"continuing_subword_prefix", "##"},
                {"max_input_chars_per_word", 100}};
  json root = {{"model", std::move(model)},
               {"normalizer", {{"type", "BertNormalizer"}}},
               {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
               {"post_processor",
                {{"type", "BertProcessing"},
                 {"cls", {spelled[size_t(cls)], cls}},
                 {"sep", {spelled[size_t(sep)], sep}}}},
               {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
               {"added_tokens", added_tokens(spelled, types)}};
  BRISK_ASSIGN(tokenizer, WordPieceTokenizer::from_json(root, path + " (GGUF tokenizer): "));
  TokenizerConfig config;
  BRISK_ASSIGN(eos, f.optional_integer("tokenizer.ggml.eos_token_id"));
  if (eos && *eos >= 0 && size_t(*eos) < tokens.size()) config.eos_token = spelled[size_t(*eos)];
  BRISK_TRY(tokenizer->apply_config(config, where));
  return tokenizer;
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> load_gguf_tokenizer(const std::filesystem::path& path) {
  BRISK_ASSIGN(file, GgufFile::open(path));
  const GgufFile& f = *file;
  const std::string where = path.string() + ": metadata ";
  BRISK_ASSIGN(kind, f.string("tokenizer.ggml.model"));
  BRISK_ASSIGN(tokens, f.strings("tokenizer.ggml.tokens"));
  const std::vector<int64_t>* types = nullptr;
  if (f.find("tokenizer.ggml.token_type")) {
    BRISK_ASSIGN(t, f.integers("tokenizer.ggml.token_type"));
    if (t->size() != tokens->size())
      return make_error(where + "tokenizer.ggml.token_type has " + std::to_string(t->size()) + " entries for " +
                        std::to_string(tokens->size()) + " tokens");
    types = t;
  }
  if (kind == "bert") {
    BRISK_ASSIGN(tokenizer, bert_tokenizer(f, *tokens, types, path.string(), where));
    return std::unique_ptr<Tokenizer>(std::move(tokenizer));
  }
  json root;
  bool add_bos_by_default = kind == "llama";  // llama.cpp adds BOS by default for SentencePiece
  if (kind == "gpt2") {
    BRISK_ASSIGN(pre, pre_tokenizer_row(f, where));
    BRISK_ASSIGN(j, gpt2_tokenizer_json(f, *tokens, types, *pre));
    add_bos_by_default = pre->add_bos_by_default;
    root = std::move(j);
  } else if (kind == "llama") {
    BRISK_ASSIGN(j, llama_tokenizer_json(f, *tokens, types, where));
    root = std::move(j);
  } else {
    return make_error(where + "tokenizer.ggml.model: tokenizer '" + kind +
                      "' is not supported (supported: gpt2, llama, bert)");
  }
  BRISK_ASSIGN(tokenizer, BpeTokenizer::from_json(root, path.string() + " (GGUF tokenizer): "));

  // BOS/EOS by id; whether BOS is added defaults as in llama.cpp.
  TokenizerConfig config;
  auto token_name = [&](const char* key) -> Result<std::optional<std::string>> {
    BRISK_ASSIGN(id, f.optional_integer(key));
    if (!id) return std::optional<std::string>();
    if (*id < 0 || size_t(*id) >= tokens->size())
      return make_error(where + key + " = " + std::to_string(*id) + " is not a token id (" +
                        std::to_string(tokens->size()) + " tokens)");
    return std::optional<std::string>((*tokens)[size_t(*id)]);
  };
  BRISK_ASSIGN(bos, token_name("tokenizer.ggml.bos_token_id"));
  BRISK_ASSIGN(eos, token_name("tokenizer.ggml.eos_token_id"));
  BRISK_ASSIGN(add_bos, f.optional_bool("tokenizer.ggml.add_bos_token"));
  BRISK_ASSIGN(add_eos, f.optional_bool("tokenizer.ggml.add_eos_token"));
  config.bos_token = bos;
  config.eos_token = eos;
  config.add_bos_token = add_bos.value_or(add_bos_by_default);
  config.add_eos_token = add_eos.value_or(false);
  BRISK_TRY(tokenizer->apply_config(config, where));
  return std::unique_ptr<Tokenizer>(std::move(tokenizer));
}

}  // namespace brisk
