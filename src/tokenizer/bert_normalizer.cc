#include "tokenizer/bert_normalizer.h"

#include <nlohmann/json.hpp>

#include "tokenizer/json_fields.h"
#include "tokenizer/unicode_props.h"
#include "tokenizer/utf8.h"

namespace brisk {

Result<BertNormalizerOptions> parse_bert_normalizer(const nlohmann::json& config, const std::string& where) {
  for (const auto& [key, value] : config.items()) {
    if (key != "type" && key != "clean_text" && key != "handle_chinese_chars" && key != "strip_accents" &&
        key != "lowercase") {
      return make_error(where + "." + key + ": unknown BertNormalizer option");
    }
  }
  BertNormalizerOptions options;
  BRISK_ASSIGN(clean_text, json_fields::boolean(config, "clean_text", true, where));
  BRISK_ASSIGN(chinese, json_fields::boolean(config, "handle_chinese_chars", true, where));
  BRISK_ASSIGN(lowercase, json_fields::boolean(config, "lowercase", true, where));
  options.clean_text = clean_text;
  options.handle_chinese_chars = chinese;
  options.lowercase = lowercase;
  if (const auto it = config.find("strip_accents"); it != config.end() && !it->is_null()) {
    if (!it->is_boolean()) return make_error(where + ".strip_accents: expected true, false or null");
    options.strip_accents = it->get<bool>();
  }
  return options;
}

void apply_bert_normalizer(const BertNormalizerOptions& options, std::string& text) {
  // Every step maps one character to characters independently of its neighbours, so the four
  // passes of tokenizers run here as one pass per character.
  const bool strip = options.strips_accents();
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  std::string stripped;
  auto emit = [&](uint32_t cp) {
    if (!strip) {
      options.lowercase ? unicode::append_lowercase(cp, out) : utf8::append_char(out, cp);
      return;
    }
    stripped.clear();
    unicode::append_without_accents(cp, stripped);
    if (!options.lowercase) {
      out += stripped;
      return;
    }
    for (size_t pos = 0; pos < stripped.size();) {
      size_t length = 0;
      unicode::append_lowercase(utf8::decode_char(stripped, pos, &length), out);
      pos += length;
    }
  };
  for (size_t pos = 0; pos < text.size();) {
    size_t length = 0;
    uint32_t cp = utf8::decode_char(text, pos, &length);
    pos += length;
    if (options.clean_text) {
      const bool kept_control = cp == '\t' || cp == '\n' || cp == '\r';
      if (cp == 0 || cp == 0xFFFD || (!kept_control && unicode::is_other(cp))) continue;
      if (unicode::is_whitespace(cp)) cp = ' ';
    }
    if (options.handle_chinese_chars && unicode::is_cjk_ideograph(cp)) {
      out.push_back(' ');
      emit(cp);
      out.push_back(' ');
    } else {
      emit(cp);
    }
  }
  text = std::move(out);
}

}  // namespace brisk
