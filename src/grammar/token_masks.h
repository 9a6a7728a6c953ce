// Which tokens a grammar allows next: the bridge from a byte-level Grammar to a vocabulary.
//
// A token is allowed when its whole byte string can be matched from the current parse state (it
// may end exactly where the sentence ends); an end-of-sequence token is allowed when the output so
// far is a whole sentence; special tokens with no text never are. The answer is a bitmask over the
// vocabulary (bit t of word t / 32), which the sampler applies on the host or the device.
//
// Cost (what makes the mask cheap enough to run every step): a state's mask is computed once per
// grammar by walking a trie of the vocabulary's byte strings from that state (each edge one read
// of a transition row, pruned where the state dies), then cached; a step copies a cached mask. A
// JSON string's body, the most permissive state, is one walk of the whole trie. Measured: the
// first implementation walked per stack with hash lookups per edge and cost 2.4x at bs1 on a cold
// start; states with transition rows brought that to ~7% (bench/results/grammar-cpu-*.json).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "grammar/grammar_stacks.h"

namespace brisk::grammar {

enum class TokenPosition : uint8_t { First, Later };  // the output's first token, or any other

// A vocabulary as byte strings, in a trie.
class TokenVocabulary {
 public:
  // later[t]: the bytes token t adds in the middle of an output; first[t]: as the output's first
  // token (SentencePiece decoders drop its leading space), or empty when the same as `later`.
  // Tokens with no bytes (control tokens) are never allowed; eos_ids are allowed at the end.
  TokenVocabulary(std::vector<std::string> later, std::vector<std::string> first, std::vector<int32_t> eos_ids);

  int32_t size() const { return int32_t(later_.size()); }
  int32_t mask_words() const { return (size() + 31) / 32; }
  const std::string& bytes(int32_t token, TokenPosition position) const;
  const std::vector<int32_t>& eos_ids() const { return eos_ids_; }

  struct Trie {
    struct Node {
      int32_t first_edge = 0, n_edges = 0;     // into edges
      int32_t first_token = 0, n_tokens = 0;   // tokens spelled by the path to this node
    };
    struct Edge {
      uint8_t byte;
      int32_t child;
    };
    std::vector<Node> nodes;  // nodes[0]: the root (the empty string)
    std::vector<Edge> edges;
    std::vector<int32_t> tokens;
    size_t depth = 0;  // the longest token's length
  };
  const Trie& trie(TokenPosition position) const {
    return position == TokenPosition::First && first_trie_ ? *first_trie_ : later_trie_;
  }

 private:
  static Trie build_trie(const std::vector<std::string>& bytes);

  std::vector<std::string> later_, first_;
  std::vector<int32_t> eos_ids_;
  Trie later_trie_;
  std::unique_ptr<Trie> first_trie_;  // only when some token differs at the start
};

// A grammar bound to a vocabulary, with the masks of the parse states it has met. Shared by every
// sequence decoding with the same grammar; thread-safe.
class ConstrainedGrammar {
 public:
  ConstrainedGrammar(Grammar grammar, std::shared_ptr<const TokenVocabulary> vocabulary);

  const TokenVocabulary& vocabulary() const { return *vocabulary_; }
  // Memory its parse states and masks hold now (GrammarCache retires a grammar that grew large).
  size_t footprint_bytes();

 private:
  friend class GrammarMatcher;
  using Mask = std::vector<uint32_t>;

  // Under mutex_: the tokens allowed in `state` (EOS not included).
  const Mask& state_mask(StateId state, TokenPosition position);
  void walk(int32_t node, StateId state, const TokenVocabulary::Trie& trie, Mask& mask);

  std::mutex mutex_;
  GrammarStacks stacks_;
  std::shared_ptr<const TokenVocabulary> vocabulary_;
  std::unordered_map<uint64_t, Mask> masks_;  // (state, position) -> allowed tokens
};

// One output's position in the grammar.
class GrammarMatcher {
 public:
  explicit GrammarMatcher(std::shared_ptr<ConstrainedGrammar> grammar);

  // Writes the next token's mask (vocabulary().mask_words() words).
  void allowed(uint32_t* words) const;
  // Moves past `token`. Returns false, leaving the state as it was, when the grammar does not allow
  // it (a caller bug or a token drawn without the mask).
  bool accept(int32_t token);

  // The output is complete: a whole sentence nothing can extend, or ended by an EOS token.
  bool finished() const;

 private:
  std::shared_ptr<ConstrainedGrammar> grammar_;
  StateId state_;
  bool ended_ = false;  // an end-of-sequence token was accepted
  TokenPosition position_ = TokenPosition::First;
};

}  // namespace brisk::grammar
