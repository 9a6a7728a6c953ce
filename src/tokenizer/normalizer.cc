#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>

#include "tokenizer/json_fields.h"
#include "tokenizer/utf8.h"

namespace brisk {
namespace {

bool is_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

void strip(std::string& text, bool left, bool right) {
  size_t begin = 0;
  size_t end = text.size();
  while (left && begin < end) {
    size_t len = 0;
    if (!is_space(utf8::decode_char(text, begin, &len))) break;
    begin += len;
  }
  while (right && end > begin) {
    size_t start = end - 1;
    while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    size_t len = 0;
    if (!is_space(utf8::decode_char(text, start, &len))) break;
    end = start;
  }
  text = text.substr(begin, end - begin);
}

// One utf8proc mapping of the whole text. Invalid UTF-8 (which Hugging Face's Rust strings cannot
// hold) is left as it is.
void unicode_map(std::string& text, int options) {
  utf8proc_uint8_t* mapped = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                          utf8proc_ssize_t(text.size()), &mapped, utf8proc_option_t(options));
  if (n >= 0) text.assign(reinterpret_cast<const char*>(mapped), size_t(n));
  std::free(mapped);
}

// Each code point replaced by map(cp), or dropped for -1; invalid bytes are kept.
template <class Map>
void map_code_points(std::string& text, Map map) {
  std::string out;
  out.reserve(text.size());
  const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  utf8proc_ssize_t at = 0, size = utf8proc_ssize_t(text.size());
  while (at < size) {
    utf8proc_int32_t cp = 0;
    const utf8proc_ssize_t len = utf8proc_iterate(bytes + at, size - at, &cp);
    if (len <= 0) {
      out += text[size_t(at++)];
      continue;
    }
    const int32_t mapped = map(cp);
    if (mapped >= 0) {
      utf8proc_uint8_t buf[4];
      out.append(reinterpret_cast<const char*>(buf), size_t(utf8proc_encode_char(mapped, buf)));
    }
    at += len;
  }
  text = std::move(out);
}

}  // namespace

Result<Normalizer> Normalizer::from_json(const nlohmann::json& config, const std::string& where) {
  Normalizer normalizer;
  if (!config.is_null()) BRISK_TRY(normalizer.append(config, where));
  return normalizer;
}

Status Normalizer::append(const nlohmann::json& config, const std::string& where) {
  BRISK_ASSIGN(type, json_fields::type_tag(config, where));
  if (type == "Sequence") {
    const auto it = config.find("normalizers");
    if (it == config.end() || !it->is_array()) {
      return make_error(where + ".normalizers: expected an array");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      BRISK_TRY(append((*it)[i], where + ".normalizers[" + std::to_string(i) + "]"));
    }
  } else if (type == "Prepend") {
    BRISK_ASSIGN(prepend, json_fields::string(config, "prepend", where));
    steps_.push_back({.kind = Kind::Prepend, .text = prepend});
  } else if (type == "Replace") {
    BRISK_ASSIGN(content, json_fields::string(config, "content", where));
    const auto it = config.find("pattern");
    if (it == config.end()) return make_error(where + ".pattern: missing");
    BRISK_ASSIGN(pattern, Pattern::from_json(*it, where + ".pattern"));
    steps_.push_back({.kind = Kind::Replace, .text = content, .pattern = std::move(pattern)});
  } else if (type == "Strip") {
    BRISK_ASSIGN(left, json_fields::boolean(config, "strip_left", true, where));
    BRISK_ASSIGN(right, json_fields::boolean(config, "strip_right", true, where));
    steps_.push_back({.kind = Kind::Strip, .strip_left = left, .strip_right = right});
  } else if (type == "BertNormalizer") {
    BRISK_ASSIGN(options, parse_bert_normalizer(config, where));
    steps_.push_back({.kind = Kind::Bert, .bert = options});
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    int options = UTF8PROC_STABLE | (type[type.size() - 1] == 'C' ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE);
    if (type.size() == 4) options |= UTF8PROC_COMPAT;
    steps_.push_back({.kind = Kind::Unicode, .unicode_options = options});
  } else if (type == "Lowercase") {
    steps_.push_back({.kind = Kind::Lowercase});
  } else if (type == "StripAccents") {
    steps_.push_back({.kind = Kind::StripAccents});
  } else {
    return make_error(where + ".type: unsupported normalizer '" + type + "'");
  }
  return ok_status();
}

void Normalizer::apply(std::string& text) const {
  std::vector<Span> matches;
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::Prepend:
        if (!text.empty()) text.insert(0, step.text);
        break;
      case Kind::Replace: {
        matches.clear();
        step.pattern->find_all(text, matches);
        if (matches.empty()) break;
        std::string out;
        out.reserve(text.size() + matches.size() * step.text.size());
        size_t copied = 0;
        for (const Span& m : matches) {
          out.append(text, copied, m.begin - copied);
          out += step.text;
          copied = m.end;
        }
        out.append(text, copied, std::string::npos);
        text = std::move(out);
        break;
      }
      case Kind::Strip:
        strip(text, step.strip_left, step.strip_right);
        break;
      case Kind::Bert:
        apply_bert_normalizer(step.bert, text);
        break;
      case Kind::Unicode:
        unicode_map(text, step.unicode_options);
        break;
      case Kind::Lowercase:
        map_code_points(text, [](int32_t cp) { return utf8proc_tolower(cp); });
        break;
      case Kind::StripAccents:
        map_code_points(text, [](int32_t cp) { return utf8proc_category(cp) == UTF8PROC_CATEGORY_MN ? -1 : cp; });
        break;
    }
  }
}

}  // namespace brisk
