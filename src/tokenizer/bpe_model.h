// The BPE model of Hugging Face `tokenizers`: one pre-tokenized word in, token ids out.
// A word starts as one symbol per character (byte tokens or <unk> for characters outside the
// vocabulary) and adjacent pairs are merged lowest merge rank first, leftmost first on ties,
// with a heap over a linked list so long words (a whole SentencePiece-style text) stay
// O(n log n).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.h"
#include "tokenizer/string_map.h"

namespace brisk {

struct BpeOptions {
  bool byte_fallback = false;  // unknown characters become <0xAB> byte tokens
  bool fuse_unk = false;       // consecutive unknown characters share one <unk>
  bool ignore_merges = false;  // a word that is itself in the vocabulary maps to that token
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;  // prepended to every non-initial character
  std::string end_of_word_suffix;         // appended to the last character
};

class BpeModel {
 public:
  // `where` names the file and field for error messages (e.g. "x/tokenizer.json: model").
  static Result<BpeModel> create(std::vector<std::pair<std::string, int32_t>> vocab,
                                 const std::vector<std::pair<std::string, std::string>>& merges,
                                 BpeOptions options, const std::string& where);

  // Appends the ids of one word, spelled as the vocabulary spells it.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // nullptr when the id is not in the vocabulary.
  const std::string* id_to_token(int32_t id) const;
  // One past the largest id in the vocabulary.
  int32_t size() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  struct Merge {
    uint32_t rank;
    int32_t new_id;
  };
  struct Symbol {
    int32_t id;
    int32_t prev;  // index of the previous live symbol, -1 at the start
    int32_t next;  // index of the next live symbol, -1 at the end
    bool live;
  };

  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  const Merge* find_merge(int32_t left, int32_t right) const;
  void initial_symbols(std::string_view word, std::vector<Symbol>& symbols) const;
  void merge_all(std::vector<Symbol>& symbols) const;

  BpeOptions options_;
  StringMap<int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> id_present_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<int32_t> unk_id_;
  std::array<int32_t, 256> byte_ids_{};  // id of "<0xAB>" per byte, -1 where absent
};

}  // namespace brisk
