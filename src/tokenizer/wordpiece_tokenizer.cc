#include "tokenizer/wordpiece_tokenizer.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace brisk {

WordPieceTokenizer::WordPieceTokenizer(WordPieceModel model, Normalizer normalizer,
                                       PreTokenizer pre_tokenizer, TokenDecoder decoder,
                                       std::vector<AddedToken> added, SpecialTokenTemplate specials)
    : model_(std::move(model)),
      normalizer_(std::move(normalizer)),
      pre_tokenizer_(std::move(pre_tokenizer)),
      decoder_(std::move(decoder)),
      added_(std::move(added), normalizer_),
      specials_(std::move(specials)) {
  vocab_size_ = std::max(model_.size(), added_.id_limit());
}

Status WordPieceTokenizer::apply_config(const TokenizerConfig& config, const std::string& where) {
  auto lookup = [this](std::string_view token) { return token_to_id(token); };
  BRISK_ASSIGN(ids, apply_tokenizer_config(config, lookup, specials_, where));
  bos_id_ = ids.bos;
  eos_id_ = ids.eos;
  return ok_status();
}

std::vector<int32_t> WordPieceTokenizer::encode(std::string_view text, AddSpecial add_special) const {
  // tokenizers only ever sees valid UTF-8 (Rust strings); repair as Python would have had to.
  std::string repaired;
  if (!utf8::is_valid(text)) {
    repaired = utf8::repair(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 4 + 8);
  added_.encode(text, normalizer_, ids, [&](std::string_view segment, bool at_start) {
    pre_tokenizer_.split(segment, at_start, [&](std::string_view word) { model_.encode_word(word, ids); });
  });
  return add_special == AddSpecial::Yes ? add_special_tokens(ids) : ids;
}

std::vector<int32_t> WordPieceTokenizer::add_special_tokens(std::span<const int32_t> ids) const {
  std::vector<int32_t> out;
  out.reserve(ids.size() + special_token_count());
  out.insert(out.end(), specials_.prefix.begin(), specials_.prefix.end());
  out.insert(out.end(), ids.begin(), ids.end());
  out.insert(out.end(), specials_.suffix.begin(), specials_.suffix.end());
  return out;
}

std::string WordPieceTokenizer::token_bytes(int32_t id, int32_t previous) const {
  const std::string* spelling = nullptr;
  if (const AddedToken* added = added_.find(id)) {
    spelling = &added->content;
  } else {
    spelling = model_.id_to_token(id);
  }
  // Ids past the vocabulary (models pad their embedding tables) decode to nothing.
  if (spelling == nullptr) return {};
  return decoder_.decode(*spelling, previous < 0);
}

bool WordPieceTokenizer::is_special(int32_t id) const {
  const AddedToken* added = added_.find(id);
  return added != nullptr && added->special;
}

std::optional<int32_t> WordPieceTokenizer::token_to_id(std::string_view token) const {
  if (const auto id = added_.find(token)) return id;
  return model_.token_to_id(token);
}

}  // namespace brisk
