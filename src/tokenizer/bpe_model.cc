#include "tokenizer/bpe_model.h"

#include <cstdio>
#include <queue>

#include "tokenizer/utf8.h"

namespace brisk {

Result<BpeModel> BpeModel::create(std::vector<std::pair<std::string, int32_t>> vocab,
                                  const std::vector<std::pair<std::string, std::string>>& merges,
                                  BpeOptions options, const std::string& where) {
  BpeModel model;
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
    model.id_to_token_[id] = token;
    model.id_present_[id] = true;
    model.vocab_.emplace(std::move(token), id);
  }

  model.merges_.reserve(merges.size());
  const std::string& prefix = model.options_.continuing_subword_prefix;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const auto left_id = model.token_to_id(left);
    const auto right_id = model.token_to_id(right);
    // The right half of a merge carries the subword prefix, which the merged token drops.
    std::string merged = left;
    if (!prefix.empty() && right.compare(0, prefix.size(), prefix) == 0) {
      merged.append(right, prefix.size());
    } else {
      merged += right;
    }
    const auto merged_id = model.token_to_id(merged);
    if (!left_id || !right_id || !merged_id) {
      return make_error(where + ".merges[" + std::to_string(rank) + "]: merge '" + left + " " + right +
                        "' uses a token missing from the vocabulary");
    }
    // Later duplicates win, as when Hugging Face collects the merges into a map.
    model.merges_[pair_key(*left_id, *right_id)] = Merge{static_cast<uint32_t>(rank), *merged_id};
  }

  if (model.options_.unk_token) model.unk_id_ = model.token_to_id(*model.options_.unk_token);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    model.byte_ids_[b] = model.token_to_id(name).value_or(-1);
  }
  return model;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || id >= size() || !id_present_[id]) return nullptr;
  return &id_to_token_[id];
}

const BpeModel::Merge* BpeModel::find_merge(int32_t left, int32_t right) const {
  const auto it = merges_.find(pair_key(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::initial_symbols(std::string_view word, std::vector<Symbol>& symbols) const {
  auto push = [&symbols](int32_t id) {
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back(Symbol{id, index - 1, -1, true});
  };
  // An unknown run waits here so fuse_unk can extend it; it is emitted when a known character
  // follows or the word ends (byte-fallback tokens do not flush it, matching Hugging Face).
  bool unk_pending = false;
  std::string piece;
  for (size_t pos = 0; pos < word.size();) {
    const size_t len = utf8::sequence_length(static_cast<unsigned char>(word[pos]));
    const bool first = pos == 0;
    const bool last = pos + len >= word.size();
    piece.clear();
    if (!first) piece += options_.continuing_subword_prefix;
    piece.append(word.substr(pos, len));
    if (last) piece += options_.end_of_word_suffix;
    pos += len;

    if (const auto id = token_to_id(piece)) {
      if (unk_pending) push(*unk_id_);
      unk_pending = false;
      push(*id);
      continue;
    }
    if (options_.byte_fallback) {
      bool all_bytes_known = true;
      for (unsigned char b : piece) all_bytes_known = all_bytes_known && byte_ids_[b] >= 0;
      if (all_bytes_known) {
        for (unsigned char b : piece) push(byte_ids_[b]);
        continue;
      }
    }
    if (!unk_id_) continue;  // no <unk> configured: the character is dropped
    if (unk_pending && !options_.fuse_unk) push(*unk_id_);
    unk_pending = true;
  }
  if (unk_pending) push(*unk_id_);
  if (!symbols.empty()) {
    for (size_t i = 0; i + 1 < symbols.size(); ++i) symbols[i].next = static_cast<int32_t>(i + 1);
  }
}

void BpeModel::merge_all(std::vector<Symbol>& symbols) const {
  struct Candidate {
    uint32_t rank;
    int32_t pos;  // index of the left symbol
    int32_t new_id;
  };
  // Lowest rank first; among equal ranks the leftmost pair.
  auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> queue(later);
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const Merge* m = find_merge(symbols[i].id, symbols[i + 1].id)) {
      queue.push({m->rank, static_cast<int32_t>(i), m->new_id});
    }
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.live || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    // Entries go stale when a neighbour merged first; the pair must still produce new_id.
    const Merge* still = find_merge(left.id, right.id);
    if (still == nullptr || still->new_id != top.new_id) continue;

    left.id = top.new_id;
    right.live = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const Merge* m = find_merge(symbols[left.prev].id, left.id)) {
        queue.push({m->rank, left.prev, m->new_id});
      }
    }
    if (left.next >= 0) {
      if (const Merge* m = find_merge(left.id, symbols[left.next].id)) {
        queue.push({m->rank, top.pos, m->new_id});
      }
    }
  }
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    if (const auto id = token_to_id(word)) {
      out.push_back(*id);
      return;
    }
  }
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  initial_symbols(word, symbols);
  merge_all(symbols);
  for (const Symbol& s : symbols) {
    if (s.live) out.push_back(s.id);
  }
}

}  // namespace brisk
