#include "tokenizer/token_decoder.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "tokenizer/byte_level.h"
#include "tokenizer/json_fields.h"

namespace brisk {
namespace {

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  std::string out;
  size_t copied = 0;
  for (size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, copied)) {
    out.append(text, copied, pos - copied);
    out += to;
    copied = pos + from.size();
  }
  if (copied == 0) return;
  out.append(text, copied, std::string::npos);
  text = std::move(out);
}

// tokenizers' decoders::wordpiece::cleanup, in its order (applied to one decoded piece).
void clean_up_tokenization(std::string& text) {
  static constexpr std::pair<std::string_view, std::string_view> kRewrites[] = {
      {" .", "."},   {" ?", "?"},           {" !", "!"},   {" ,", ","},     {" ' ", "'"},   {" n't", "n't"},
      {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRewrites) replace_all(text, from, to);
}

}  // namespace

int byte_token_value(std::string_view token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  int value = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = token[i];
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return -1;
    }
    value = value * 16 + digit;
  }
  return value;
}

Result<TokenDecoder> TokenDecoder::from_json(const nlohmann::json& config, const std::string& where) {
  TokenDecoder decoder;
  if (!config.is_null()) BRISK_TRY(decoder.append(config, where));
  return decoder;
}

Status TokenDecoder::append(const nlohmann::json& config, const std::string& where) {
  BRISK_ASSIGN(type, json_fields::type_tag(config, where));
  if (type == "Sequence") {
    const auto it = config.find("decoders");
    if (it == config.end() || !it->is_array()) {
      return make_error(where + ".decoders: expected an array");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      BRISK_TRY(append((*it)[i], where + ".decoders[" + std::to_string(i) + "]"));
    }
  } else if (type == "ByteLevel") {
    steps_.push_back({.kind = Kind::ByteLevel});
  } else if (type == "ByteFallback") {
    steps_.push_back({.kind = Kind::ByteFallback});
  } else if (type == "Fuse") {
    fused_ = true;
  } else if (type == "Replace") {
    const auto it = config.find("pattern");
    if (it == config.end() || !it->is_object() || !it->contains("String") || !(*it)["String"].is_string()) {
      return make_error(where + ".pattern: only {\"String\": ...} patterns are supported");
    }
    BRISK_ASSIGN(content, json_fields::string(config, "content", where));
    steps_.push_back({.kind = Kind::Replace, .from = (*it)["String"].get<std::string>(), .to = content});
  } else if (type == "Strip") {
    BRISK_ASSIGN(content, json_fields::string(config, "content", where));
    BRISK_ASSIGN(start, json_fields::count(config, "start", 0, where));
    BRISK_ASSIGN(stop, json_fields::count(config, "stop", 0, where));
    Step step{.kind = Kind::Strip, .from = content};
    step.start = static_cast<size_t>(start);
    step.stop = static_cast<size_t>(stop);
    step.whole_text = fused_;
    steps_.push_back(step);
  } else if (type == "Metaspace") {
    BRISK_ASSIGN(replacement, json_fields::string(config, "replacement", where));
    BRISK_ASSIGN(scheme, json_fields::optional_string(config, "prepend_scheme", where));
    BRISK_ASSIGN(prefix, json_fields::boolean(config, "add_prefix_space", true, where));
    Step step{.kind = Kind::Metaspace, .from = replacement, .to = " "};
    step.strip_first = scheme ? *scheme != "never" : prefix;
    steps_.push_back(step);
  } else if (type == "WordPiece") {
    BRISK_ASSIGN(prefix, json_fields::optional_string(config, "prefix", where));
    BRISK_ASSIGN(cleanup, json_fields::boolean(config, "cleanup", true, where));
    Step step{.kind = Kind::WordPiece, .from = prefix.value_or("##")};
    step.cleanup = cleanup;
    steps_.push_back(step);
  } else {
    return make_error(where + ".type: unsupported decoder '" + type + "'");
  }
  return ok_status();
}

std::string TokenDecoder::decode(std::string_view token, bool first) const {
  std::string text(token);
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::ByteLevel:
        text = byte_level::decode(text);
        break;
      case Kind::Replace:
        replace_all(text, step.from, step.to);
        break;
      case Kind::ByteFallback:
        if (const int value = byte_token_value(text); value >= 0) {
          text.assign(1, static_cast<char>(value));
        }
        break;
      case Kind::Strip: {
        // After Fuse the whole output is one string, so only its very start is stripped; a
        // trailing strip would need the end of the stream, which streaming never knows.
        if (step.whole_text && !first) break;
        size_t begin = 0;
        for (size_t i = 0; i < step.start; ++i) {
          if (text.compare(begin, step.from.size(), step.from) != 0) break;
          begin += step.from.size();
        }
        size_t end = text.size();
        for (size_t i = 0; i < step.stop && !step.whole_text; ++i) {
          if (end < begin + step.from.size() ||
              text.compare(end - step.from.size(), step.from.size(), step.from) != 0) {
            break;
          }
          end -= step.from.size();
        }
        text = text.substr(begin, end - begin);
        break;
      }
      case Kind::Metaspace:
        replace_all(text, step.from, first && step.strip_first ? "" : step.to);
        break;
      case Kind::WordPiece:
        if (!first) {
          if (text.compare(0, step.from.size(), step.from) == 0) {
            text.erase(0, step.from.size());
          } else {
            text.insert(0, 1, ' ');
          }
        }
        if (step.cleanup) clean_up_tokenization(text);
        break;
    }
  }
  return text;
}

}  // namespace brisk
