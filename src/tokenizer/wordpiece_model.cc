#include "tokenizer/wordpiece_model.h"

#include <algorithm>


namespace brisk {
namespace {

size_t count_chars(std::string_view text) {
  size_t n = 0;
  for (const char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// The largest end <= limit that does not split a character (text is valid UTF-8).
size_t char_boundary_at_or_before(std::string_view text, size_t limit) {
  while (limit > 0 && limit < text.size() && (static_cast<unsigned char>(text[limit]) & 0xC0) == 0x80)
    --limit;
  return limit;
}

}  // namespace

Result<WordPieceModel> WordPieceModel::create(std::vector<std::pair<std::string, int32_t>> vocab,
                                              WordPieceOptions options, const std::string& where) {
  WordPieceModel model;
  model.options_ = std::move(options);
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab) {
    if (id < 0) return make_error(where + ".vocab: negative id for token '" + token + "'");
    max_id = std::max(max_id, id);
  }
  model.id_to_token_.resize(static_cast<size_t>(max_id + 1));
  model.id_present_.assign(static_cast<size_t>(max_id + 1), false);
  model.vocab_.reserve(vocab.size());
  for (auto& [token, id] : vocab) {
    model.longest_token_ = std::max(model.longest_token_, token.size());
    model.id_to_token_[id] = token;
    model.id_present_[id] = true;
    model.vocab_.emplace(std::move(token), id);
  }
  const auto unk = model.token_to_id(model.options_.unk_token);
  if (!unk) {
    return make_error(where + ".unk_token: '" + model.options_.unk_token + "' is not in " + where + ".vocab");
  }
  model.unk_id_ = *unk;
  return model;
}

std::optional<int32_t> WordPieceModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* WordPieceModel::id_to_token(int32_t id) const {
  if (id < 0 || id >= size() || !id_present_[id]) return nullptr;
  return &id_to_token_[id];
}

void WordPieceModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (count_chars(word) > options_.max_input_chars_per_word) {
    out.push_back(unk_id_);
    return;
  }
  const std::string& prefix = options_.continuing_subword_prefix;
  const size_t first = out.size();
  std::string candidate;
  for (size_t start = 0; start < word.size();) {
    // tokenizers tries every end from the word's end down, one character at a time; ends past
    // the longest vocabulary entry cannot match, so the search starts there instead.
    const size_t affix = start > 0 ? prefix.size() : 0;
    const size_t reach = longest_token_ > affix ? longest_token_ - affix : 0;
    size_t end = char_boundary_at_or_before(word, std::min(word.size(), start + reach));
    int32_t match = -1;
    for (; end > start; end = char_boundary_at_or_before(word, end - 1)) {
      candidate.assign(start > 0 ? prefix : std::string_view());
      candidate.append(word.substr(start, end - start));
      if (const auto it = vocab_.find(candidate); it != vocab_.end()) {
        match = it->second;
        break;
      }
    }
    if (match < 0) {  // one unmatched stretch makes the whole word unknown
      out.resize(first);
      out.push_back(unk_id_);
      return;
    }
    out.push_back(match);
    start = end;
  }
}

}  // namespace brisk
