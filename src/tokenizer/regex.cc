#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "tokenizer/utf8.h"

namespace brisk {

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

namespace {

// Match data and JIT stack are per thread so one compiled tokenizer can encode concurrently.
struct MatchScratch {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  // Long whitespace runs under `\s+(?!\S)` can outgrow the default 32 KiB JIT stack.
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);

  MatchScratch() { pcre2_jit_stack_assign(context, nullptr, stack); }
  ~MatchScratch() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

MatchScratch& scratch() {
  thread_local MatchScratch s;
  return s;
}

// PCRE2 stops a match after a fixed number of backtracking steps (10 million by default), which
// the published pre-tokenizer regexes reach on long whitespace runs: `\s*[\r\n]+` scans a run of
// spaces to its end and back, one step per character, before `\s+(?!\S)` takes it. Their work is
// linear in the text, so the limit grows with the subject instead: every linear pattern finishes,
// while a catastrophically backtracking one (a hostile tokenizer.json) still stops.
constexpr uint64_t kMatchStepsPerByte = 16;
constexpr uint64_t kMinMatchLimit = 10'000'000;

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

Result<Regex> Regex::compile(std::string_view pattern, const std::string& where) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    return make_error(where + ": cannot compile regex '" + std::string(pattern) + "' at offset " +
                      std::to_string(error_offset) + ": " + pcre2_message(error_code));
  }
  auto owned = std::make_shared<Code>();
  owned->code = code;
  // JIT is an optimisation; the interpreter gives the same matches when it is unavailable.
  owned->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  Regex regex;
  regex.code_ = std::move(owned);
  return regex;
}

void Regex::find_all(std::string_view text, std::vector<Span>& matches) const {
  MatchScratch& s = scratch();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t search_from = 0;
  size_t last_match_end = std::string_view::npos;
  const uint64_t limit = std::max<uint64_t>(kMinMatchLimit, kMatchStepsPerByte * text.size());
  pcre2_set_match_limit(s.context, static_cast<uint32_t>(std::min<uint64_t>(limit, UINT32_MAX)));
  while (search_from <= text.size()) {
    // Callers pass valid UTF-8, so the per-call O(n) validity check would only make long texts
    // quadratic.
    const int rc = code_->jit ? pcre2_jit_match(code_->code, subject, text.size(), search_from,
                                                PCRE2_NO_UTF_CHECK, s.data, s.context)
                              : pcre2_match(code_->code, subject, text.size(), search_from,
                                            PCRE2_NO_UTF_CHECK, s.data, s.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0)
      throw RegexLimitError("a tokenizer regex gave up on a text of " + std::to_string(text.size()) +
                            " bytes (" + pcre2_message(rc) + "): the pattern backtracks catastrophically; "
                            "fix the pre-tokenizer or normalizer regex in tokenizer.json");
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(s.data);
    const size_t begin = ovector[0];
    const size_t end = ovector[1];
    if (begin == end && end == last_match_end) {
      if (search_from >= text.size()) break;
      search_from += utf8::sequence_length(static_cast<unsigned char>(text[search_from]));
      continue;
    }
    matches.push_back({begin, end});
    search_from = end;
    last_match_end = end;
  }
}

Result<Pattern> Pattern::from_json(const nlohmann::json& pattern, const std::string& where) {
  if (pattern.is_object() && pattern.size() == 1) {
    if (const auto it = pattern.find("String"); it != pattern.end() && it->is_string()) {
      return from_literal(it->get<std::string>());
    }
    if (const auto it = pattern.find("Regex"); it != pattern.end() && it->is_string()) {
      return from_regex(it->get<std::string>(), where + ".Regex");
    }
  }
  return make_error(where + ": expected {\"String\": ...} or {\"Regex\": ...}");
}

Result<Pattern> Pattern::from_regex(std::string_view regex, const std::string& where) {
  BRISK_ASSIGN(compiled, Regex::compile(regex, where));
  Pattern p;
  p.regex_ = std::move(compiled);
  return p;
}

Pattern Pattern::from_literal(std::string literal) {
  Pattern p;
  p.literal_ = std::move(literal);
  return p;
}

void Pattern::find_all(std::string_view text, std::vector<Span>& matches) const {
  if (regex_) {
    regex_->find_all(text, matches);
    return;
  }
  if (literal_.empty()) return;
  for (size_t pos = text.find(literal_); pos != std::string_view::npos;
       pos = text.find(literal_, pos + literal_.size())) {
    matches.push_back({pos, pos + literal_.size()});
  }
}

}  // namespace brisk
