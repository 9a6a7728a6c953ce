#include "tokenizer/normalizer.h"

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
  } else if (type == "NFC") {
    // Text reaching an LLM is NFC already in practice (keyboards, the web and Python all produce
    // composed forms), so NFC is accepted as the identity instead of pulling in ICU; decomposed
    // input would tokenize differently from Hugging Face.
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
    }
  }
}

}  // namespace brisk
