#include "export/gguf_vocabulary.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "formats/gguf.h"
#include "formats/json_file.h"
#include "tokenizer/gguf_pre_tokenizers.h"
#include "tokenizer/gguf_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace brisk {

namespace {

using nlohmann::json;


// The split regexes of a byte-level pre-tokenizer as gguf_pre's rows list them: a lone ByteLevel
// with its own (GPT-2) regex gives none; a Sequence of isolating Splits ending in a ByteLevel
// without its regex gives theirs. Anything else (a prefix space, other steps): nullopt.
std::optional<std::vector<std::string>> split_regexes(const json& pre) {
  auto byte_level = [](const json& step, bool own_regex) {
    return step.is_object() && step.value("type", "") == "ByteLevel" && !step.value("add_prefix_space", false) &&
           step.value("use_regex", true) == own_regex;
  };
  if (byte_level(pre, true)) return std::vector<std::string>{};
  if (!pre.is_object() || pre.value("type", "") != "Sequence") return std::nullopt;
  const json& steps = pre.value("pretokenizers", json::array());
  if (steps.empty() || !byte_level(steps.back(), false)) return std::nullopt;
  std::vector<std::string> regexes;
  for (size_t i = 0; i + 1 < steps.size(); ++i) {
    const json& step = steps[i];
    const json& pattern = step.value("pattern", json::object());
    if (step.value("type", "") != "Split" || step.value("behavior", "") != "Isolated" || step.value("invert", false) ||
        !pattern.is_object() || !pattern.contains("Regex") || !pattern["Regex"].is_string())
      return std::nullopt;
    regexes.push_back(pattern["Regex"].get<std::string>());
  }
  return regexes;
}

// The llama.cpp pre-tokenizer type that splits as tokenizer.json's pre_tokenizer does and takes
// whole-word tokens as its model does (gguf_pre's rows say both): the row's first name.
Result<std::string> pre_tokenizer_name(const json& tokenizer, const std::string& where) {
  const json& pre = tokenizer.value("pre_tokenizer", json());
  const bool ignore_merges = tokenizer["model"].value("ignore_merges", false);
  if (const auto regexes = split_regexes(pre))
    for (const gguf_pre::Row& row : gguf_pre::rows()) {
      const bool whole = row.whole_words == gguf_pre::WholeWords::TakeIfInVocab;
      if (whole == ignore_merges && std::equal(row.regexes.begin(), row.regexes.end(), regexes->begin(), regexes->end()))
        return std::string(row.names.front());
    }
  return make_error(where + ": pre_tokenizer " + pre.dump().substr(0, 200) +
                    (ignore_merges ? " (with ignore_merges)" : "") +
                    " matches no pre-tokenizer type llama.cpp has (tokenizer.ggml.pre): GGUF cannot express it");
}

// Byte-level BPE (GPT-2, Llama 3, Qwen2 tokenizers): tokens by id, their types, merges, pre.
Status write_byte_level_bpe(const json& tokenizer, const std::string& where, GgufWriter& out,
                            GgufVocabularyReport& report) {
  const json& model = tokenizer["model"];
  if (model.value("type", "") != "BPE")
    return make_error(where + ": model type '" + model.value("type", "") +
                      "' cannot be exported to GGUF yet (byte-level BPE only)");
  if (model.value("byte_fallback", false))
    return make_error(where + ": a byte-fallback (SentencePiece-style) BPE vocabulary cannot be exported to GGUF yet");
  if (!tokenizer.value("normalizer", json()).is_null())
    return make_error(where + ": the tokenizer has a normalizer, which GGUF's byte-level BPE (tokenizer.ggml.model "
                      "gpt2) does not apply");
  BRISK_ASSIGN(pre, pre_tokenizer_name(tokenizer, where));

  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  auto place = [&](const std::string& text, int64_t id, int32_t type) -> Status {
    if (id < 0 || id > int64_t(1) << 24) return make_error(where + ": token id " + std::to_string(id) + " out of range");
    if (size_t(id) >= tokens.size()) {
      tokens.resize(size_t(id) + 1);
      types.resize(size_t(id) + 1, 0);
    }
    tokens[size_t(id)] = text;
    types[size_t(id)] = type;
    return ok_status();
  };
  for (const auto& [text, id] : model.at("vocab").items()) BRISK_TRY(place(text, id.get<int64_t>(), gguf_token::kNormal));
  for (const json& added : tokenizer.value("added_tokens", json::array()))
    BRISK_TRY(place(added.at("content").get<std::string>(), added.at("id").get<int64_t>(),
                    added.value("special", false) ? gguf_token::kControl : gguf_token::kUserDefined));
  for (size_t id = 0; id < types.size(); ++id)
    if (types[id] == 0)
      return make_error(where + ": no token has id " + std::to_string(id) + " (GGUF lists tokens by id without gaps)");

  std::vector<std::string> merges;
  for (const json& m : model.value("merges", json::array())) {
    if (m.is_string()) merges.push_back(m.get<std::string>());
    else merges.push_back(m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());  // newer [left, right]
  }
  out.set_string("tokenizer.ggml.model", "gpt2");
  out.set_string("tokenizer.ggml.pre", pre);
  out.set_strings("tokenizer.ggml.tokens", tokens);
  out.set_i32s("tokenizer.ggml.token_type", types);
  out.set_strings("tokenizer.ggml.merges", merges);
  report = {"gpt2", pre, int64_t(tokens.size())};
  return ok_status();
}

}  // namespace

Result<GgufVocabularyReport> write_gguf_vocabulary(const std::filesystem::path& model,
                                                   const std::optional<std::string>& chat_template,
                                                   GgufWriter& out) {
  GgufVocabularyReport report;
  if (is_gguf_path(model)) {
    BRISK_ASSIGN(file, GgufFile::open(model));
    for (const auto& [key, value] : file->metadata())
      if (key.starts_with("tokenizer.") && value.element_type != GgufType::Array) out.set_value(key, value);
    BRISK_ASSIGN(kind, file->optional_string("tokenizer.ggml.model"));
    BRISK_ASSIGN(pre, file->optional_string("tokenizer.ggml.pre"));
    report.model = kind.value_or("");
    report.pre = pre.value_or("");
    if (const GgufValue* tokens = file->find("tokenizer.ggml.tokens")) report.tokens = int64_t(tokens->strings.size());
  } else {
    const std::filesystem::path path = model / "tokenizer.json";
    if (!path_exists(path)) {
      if (path_exists(model / "tokenizer.model"))
        return make_error((model / "tokenizer.model").string() +
                          ": a SentencePiece tokenizer.model cannot be exported to GGUF yet (tokenizer.json only)");
      return report;  // weights only (golden fixtures): the file gets no vocabulary
    }
    BRISK_ASSIGN(tokenizer, read_json_file(path));
    if (!tokenizer.is_object() || !tokenizer.contains("model") || !tokenizer["model"].is_object())
      return make_error(path.string() + ": expected a tokenizer.json object with a \"model\"");
    try {
      BRISK_TRY(write_byte_level_bpe(tokenizer, path.string(), out, report));
    } catch (const json::exception& e) {
      return make_error(path.string() + ": " + e.what());
    }
    // Special ids and whether they are added, as brisk's tokenizer of the folder applies them.
    BRISK_ASSIGN(loaded, Tokenizer::load(model));
    if (auto bos = loaded->bos_id()) out.set_u32("tokenizer.ggml.bos_token_id", uint32_t(*bos));
    if (auto eos = loaded->eos_id()) out.set_u32("tokenizer.ggml.eos_token_id", uint32_t(*eos));
    const std::vector<int32_t> plain = loaded->encode("a", AddSpecial::No);
    const std::vector<int32_t> with = loaded->encode("a", AddSpecial::Yes);
    const size_t added = with.size() - std::min(with.size(), plain.size());
    const bool adds_bos = loaded->bos_id() && added >= 1 && with.front() == *loaded->bos_id();
    const bool adds_eos = loaded->eos_id() && added >= (adds_bos ? 2u : 1u) && with.back() == *loaded->eos_id();
    out.set_bool("tokenizer.ggml.add_bos_token", adds_bos);
    out.set_bool("tokenizer.ggml.add_eos_token", adds_eos);
  }
  if (chat_template) out.set_string("tokenizer.chat_template", *chat_template);
  return report;
}

}  // namespace brisk
