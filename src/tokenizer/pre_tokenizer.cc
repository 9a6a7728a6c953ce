#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "tokenizer/json_fields.h"
#include "tokenizer/unicode_props.h"
#include "tokenizer/utf8.h"

namespace brisk {
namespace {

// GPT-2's word regex, which the ByteLevel pre-tokenizer applies when use_regex is set.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Element {
  size_t begin;
  size_t end;
  bool is_match;
};

}  // namespace

Result<PreTokenizer> PreTokenizer::from_json(const nlohmann::json& config, const std::string& where) {
  PreTokenizer pre;
  if (config.is_null()) return pre;
  BRISK_TRY(pre.append(config, where));
  return pre;
}

Status PreTokenizer::append(const nlohmann::json& config, const std::string& where) {
  if (byte_level_) {
    return make_error(where + ": steps after ByteLevel are not supported (ByteLevel must come last)");
  }
  BRISK_ASSIGN(type, json_fields::type_tag(config, where));
  if (type == "Sequence") {
    const auto it = config.find("pretokenizers");
    if (it == config.end() || !it->is_array()) {
      return make_error(where + ".pretokenizers: expected an array");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      BRISK_TRY(append((*it)[i], where + ".pretokenizers[" + std::to_string(i) + "]"));
    }
    return ok_status();
  }
  if (type == "Split") return append_split(config, where);
  if (type == "ByteLevel") return append_byte_level(config, where);
  if (type == "Metaspace") return append_metaspace(config, where);
  if (type == "Digits") {
    BRISK_ASSIGN(individual, json_fields::boolean(config, "individual_digits", false, where));
    BRISK_ASSIGN(pattern, Pattern::from_regex(individual ? R"(\p{N})" : R"(\p{N}+)", where));
    steps_.push_back({.kind = Kind::Split, .pattern = std::move(pattern)});
    return ok_status();
  }
  if (type == "BertPreTokenizer") {
    steps_.push_back({.kind = Kind::Bert});
    return ok_status();
  }
  if (type == "WhitespaceSplit" || type == "Whitespace") {
    // WhitespaceSplit drops whitespace runs; Whitespace keeps \w+ and punctuation runs.
    const bool words = type == "Whitespace";
    BRISK_ASSIGN(pattern, Pattern::from_regex(words ? R"(\w+|[^\w\s]+)" : R"(\s+)", where));
    steps_.push_back(
        {.kind = Kind::Split, .pattern = std::move(pattern), .behavior = Behavior::Removed, .invert = words});
    return ok_status();
  }
  return make_error(where + ".type: unsupported pre_tokenizer '" + type + "'");
}

Status PreTokenizer::append_split(const nlohmann::json& config, const std::string& where) {
  const auto it = config.find("pattern");
  if (it == config.end()) return make_error(where + ".pattern: missing");
  BRISK_ASSIGN(pattern, Pattern::from_json(*it, where + ".pattern"));
  BRISK_ASSIGN(behavior_name, json_fields::string(config, "behavior", where));
  BRISK_ASSIGN(invert, json_fields::boolean(config, "invert", false, where));
  Behavior behavior;
  if (behavior_name == "Removed") {
    behavior = Behavior::Removed;
  } else if (behavior_name == "Isolated") {
    behavior = Behavior::Isolated;
  } else if (behavior_name == "MergedWithPrevious") {
    behavior = Behavior::MergedWithPrevious;
  } else if (behavior_name == "MergedWithNext") {
    behavior = Behavior::MergedWithNext;
  } else if (behavior_name == "Contiguous") {
    behavior = Behavior::Contiguous;
  } else {
    return make_error(where + ".behavior: unknown split behavior '" + behavior_name + "'");
  }
  steps_.push_back(
      {.kind = Kind::Split, .pattern = std::move(pattern), .behavior = behavior, .invert = invert});
  return ok_status();
}

Status PreTokenizer::append_byte_level(const nlohmann::json& config, const std::string& where) {
  // Defaults are those of tokenizers' ByteLevel::default().
  BRISK_ASSIGN(prefix, json_fields::boolean(config, "add_prefix_space", true, where));
  BRISK_ASSIGN(use_regex, json_fields::boolean(config, "use_regex", true, where));
  Step step{.kind = Kind::ByteLevel};
  step.add_prefix_space = prefix;
  if (use_regex) {
    BRISK_ASSIGN(pattern, Pattern::from_regex(kGpt2Pattern, where));
    step.pattern = std::move(pattern);
  }
  steps_.push_back(std::move(step));
  byte_level_ = true;
  return ok_status();
}

Status PreTokenizer::append_metaspace(const nlohmann::json& config, const std::string& where) {
  BRISK_ASSIGN(replacement, json_fields::string(config, "replacement", where));
  BRISK_ASSIGN(split, json_fields::boolean(config, "split", true, where));
  Step step{.kind = Kind::Metaspace};
  step.replacement = replacement;
  BRISK_ASSIGN(scheme, json_fields::optional_string(config, "prepend_scheme", where));
  if (scheme) {
    if (*scheme == "always") {
      step.prepend = Prepend::Always;
    } else if (*scheme == "first") {
      step.prepend = Prepend::First;
    } else if (*scheme == "never") {
      step.prepend = Prepend::Never;
    } else {
      return make_error(where + ".prepend_scheme: unknown value '" + *scheme + "'");
    }
  } else {
    // Files written before prepend_scheme existed say add_prefix_space instead.
    BRISK_ASSIGN(prefix, json_fields::boolean(config, "add_prefix_space", true, where));
    step.prepend = prefix ? Prepend::Always : Prepend::Never;
  }
  if (split) step.pattern = Pattern::from_literal(replacement);
  steps_.push_back(std::move(step));
  return ok_status();
}

void PreTokenizer::split_spans(std::string_view text, const Pattern& pattern, Behavior behavior, bool invert,
                               std::vector<Span>& spans) {
  std::vector<Span> matches;
  pattern.find_all(text, matches);
  // Matches and the gaps between them, covering the text, as tokenizers' find_matches builds.
  std::vector<Element> elements;
  elements.reserve(matches.size() * 2 + 1);
  size_t previous = 0;
  for (const Span& m : matches) {
    if (previous != m.begin) elements.push_back({previous, m.begin, invert});
    elements.push_back({m.begin, m.end, !invert});
    previous = m.end;
  }
  if (previous != text.size() || elements.empty()) elements.push_back({previous, text.size(), invert});

  spans.reserve(elements.size());
  switch (behavior) {
    case Behavior::Removed:
      for (const Element& e : elements) {
        if (!e.is_match) spans.push_back({e.begin, e.end});
      }
      break;
    case Behavior::Isolated:
      for (const Element& e : elements) spans.push_back({e.begin, e.end});
      break;
    case Behavior::MergedWithPrevious: {
      bool previous_match = false;
      for (const Element& e : elements) {
        if (e.is_match && !previous_match && !spans.empty()) {
          spans.back().end = e.end;
        } else {
          spans.push_back({e.begin, e.end});
        }
        previous_match = e.is_match;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      // Walk right to left so each delimiter joins the piece after it.
      bool next_match = false;
      for (auto e = elements.rbegin(); e != elements.rend(); ++e) {
        if (e->is_match && !next_match && !spans.empty()) {
          spans.back().begin = e->begin;
        } else {
          spans.push_back({e->begin, e->end});
        }
        next_match = e->is_match;
      }
      std::reverse(spans.begin(), spans.end());
      break;
    }
    case Behavior::Contiguous: {
      bool previous_match = false;
      for (const Element& e : elements) {
        if (e.is_match == previous_match && !spans.empty()) {
          spans.back().end = e.end;
        } else {
          spans.push_back({e.begin, e.end});
        }
        previous_match = e.is_match;
      }
      break;
    }
  }
}

// BertPreTokenizer: split on whitespace (dropped), then every punctuation character is a word of
// its own. Character classes are tokenizers' own (unicode_props.h), not PCRE2's, whose Unicode is
// newer.
void PreTokenizer::bert_spans(std::string_view text, std::vector<Span>& spans) {
  size_t word_start = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t length = 0;
    const uint32_t cp = utf8::decode_char(text, pos, &length);
    const bool space = unicode::is_whitespace(cp);
    if (space || unicode::is_bert_punctuation(cp)) {
      if (word_start < pos) spans.push_back({word_start, pos});
      if (!space) spans.push_back({pos, pos + length});
      word_start = pos + length;
    }
    pos += length;
  }
  if (word_start < text.size()) spans.push_back({word_start, text.size()});
}

void PreTokenizer::run(size_t step_index, std::string_view text, bool at_start,
                       const WordVisitor& visit) const {
  if (text.empty()) return;  // tokenizers drops empty splits at every stage
  if (step_index == steps_.size()) {
    visit(text);
    return;
  }
  const Step& step = steps_[step_index];
  // Steps that rewrite the text own the rewritten copy for as long as later steps look at it.
  std::string rewritten;
  switch (step.kind) {
    case Kind::Split:
      break;
    case Kind::Bert: {
      std::vector<Span> spans;
      bert_spans(text, spans);
      for (const Span& span : spans) {
        run(step_index + 1, text.substr(span.begin, span.end - span.begin), at_start && span.begin == 0,
            visit);
      }
      return;
    }
    case Kind::ByteLevel:
      if (step.add_prefix_space && text.front() != ' ') {
        rewritten.reserve(text.size() + 1);
        rewritten.push_back(' ');
        rewritten.append(text);
        text = rewritten;
      }
      break;
    case Kind::Metaspace: {
      rewritten.reserve(text.size() + 8);
      for (char c : text) {
        if (c == ' ') {
          rewritten += step.replacement;
        } else {
          rewritten.push_back(c);
        }
      }
      const bool has_prefix = rewritten.compare(0, step.replacement.size(), step.replacement) == 0;
      const bool prepend = step.prepend == Prepend::Always || (step.prepend == Prepend::First && at_start);
      if (prepend && !has_prefix) rewritten.insert(0, step.replacement);
      text = rewritten;
      break;
    }
  }
  if (!step.pattern) {
    run(step_index + 1, text, at_start, visit);
    return;
  }
  // Split uses its own behaviour; ByteLevel's GPT-2 regex isolates words; Metaspace glues each
  // "▁" to the word after it.
  Behavior behavior = step.behavior;
  if (step.kind == Kind::ByteLevel) behavior = Behavior::Isolated;
  if (step.kind == Kind::Metaspace) behavior = Behavior::MergedWithNext;
  std::vector<Span> spans;
  split_spans(text, *step.pattern, behavior, step.kind == Kind::Split && step.invert, spans);
  for (const Span& span : spans) {
    run(step_index + 1, text.substr(span.begin, span.end - span.begin), at_start && span.begin == 0, visit);
  }
}

void PreTokenizer::split(std::string_view text, bool at_text_start, const WordVisitor& visit) const {
  run(0, text, at_text_start, visit);
}

}  // namespace brisk
