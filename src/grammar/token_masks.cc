#include "grammar/token_masks.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
static size_t walk_nodes_;
#include <numeric>

namespace brisk::grammar {

// ---- TokenVocabulary -------------------------------------------------------------------------

TokenVocabulary::TokenVocabulary(std::vector<std::string> later, std::vector<std::string> first,
                                 std::vector<int32_t> eos_ids)
    : later_(std::move(later)), first_(std::move(first)), eos_ids_(std::move(eos_ids)) {
  BRISK_CHECK(first_.empty() || first_.size() == later_.size(), "TokenVocabulary: first and later differ in size");
  if (first_ == later_) first_.clear();
  later_trie_ = build_trie(later_);
  if (!first_.empty()) first_trie_ = std::make_unique<Trie>(build_trie(first_));
}

const std::string& TokenVocabulary::bytes(int32_t token, TokenPosition position) const {
  return position == TokenPosition::First && !first_.empty() ? first_[size_t(token)] : later_[size_t(token)];
}

// Tokens sorted by their bytes: a node's subtree is a contiguous run, built depth by depth.
TokenVocabulary::Trie TokenVocabulary::build_trie(const std::vector<std::string>& bytes) {
  std::vector<int32_t> order(bytes.size());
  std::iota(order.begin(), order.end(), 0);
  std::erase_if(order, [&](int32_t t) { return bytes[size_t(t)].empty(); });
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return bytes[size_t(a)] < bytes[size_t(b)]; });
  Trie trie;
  trie.tokens = order;
  struct Pending {
    int32_t node;
    size_t begin, end, depth;  // tokens [begin, end) of `order` share the node's prefix of `depth` bytes
  };
  trie.nodes.push_back({});
  std::vector<Pending> queue = {{0, 0, order.size(), 0}};
  for (size_t q = 0; q < queue.size(); ++q) {
    const Pending p = queue[q];
    size_t i = p.begin;
    const int32_t first_token = int32_t(i);
    while (i < p.end && bytes[size_t(order[i])].size() == p.depth) ++i;  // spelled exactly here
    trie.nodes[size_t(p.node)].first_token = first_token;
    trie.nodes[size_t(p.node)].n_tokens = int32_t(i) - first_token;
    trie.nodes[size_t(p.node)].first_edge = int32_t(trie.edges.size());
    while (i < p.end) {
      const uint8_t byte = uint8_t(bytes[size_t(order[i])][p.depth]);
      size_t j = i;
      while (j < p.end && uint8_t(bytes[size_t(order[j])][p.depth]) == byte) ++j;
      const int32_t child = int32_t(trie.nodes.size());
      trie.nodes.push_back({});
      trie.edges.push_back({byte, child});
      queue.push_back({child, i, j, p.depth + 1});
      i = j;
    }
    trie.nodes[size_t(p.node)].n_edges = int32_t(trie.edges.size()) - trie.nodes[size_t(p.node)].first_edge;
    trie.depth = std::max(trie.depth, p.depth);
  }
  return trie;
}

// ---- ConstrainedGrammar ----------------------------------------------------------------------

ConstrainedGrammar::ConstrainedGrammar(Grammar grammar, std::shared_ptr<const TokenVocabulary> vocabulary)
    : stacks_(std::move(grammar)), vocabulary_(std::move(vocabulary)) {}

const ConstrainedGrammar::Mask& ConstrainedGrammar::state_mask(StateId state, TokenPosition position) {
  const uint64_t key = (uint64_t(uint32_t(state)) << 1) | uint64_t(position == TokenPosition::First);
  if (auto it = masks_.find(key); it != masks_.end()) return it->second;
  Mask mask(size_t(vocabulary_->mask_words()), 0u);
  if (stacks_.can_continue(state)) walk(0, state, vocabulary_->trie(position), mask);
  return masks_.emplace(key, std::move(mask)).first->second;
}

size_t ConstrainedGrammar::footprint_bytes() {
  std::lock_guard<std::mutex> lock(mutex_);
  return stacks_.footprint_bytes() + masks_.size() * (size_t(vocabulary_->mask_words()) * sizeof(uint32_t) + 64);
}

// Depth-first over the trie: `state` is where the bytes of the path to `node` lead. A token is
// allowed when its last byte leaves a live state (more may follow, or the sentence ends there).
void ConstrainedGrammar::walk(int32_t node, StateId state, const TokenVocabulary::Trie& trie, Mask& mask) {
  const TokenVocabulary::Trie::Node& n = trie.nodes[size_t(node)];
  for (int32_t e = n.first_edge; e < n.first_edge + n.n_edges; ++e) {
    const TokenVocabulary::Trie::Edge edge = trie.edges[size_t(e)];
    const StateId next = stacks_.next(state, edge.byte);
    if (next == kDeadState || stacks_.overflowed(next)) continue;
    const TokenVocabulary::Trie::Node& child = trie.nodes[size_t(edge.child)];
    for (int32_t i = child.first_token; i < child.first_token + child.n_tokens; ++i) {
      const int32_t token = trie.tokens[size_t(i)];
      mask[size_t(token) / 32] |= 1u << (token % 32);
    }
    if (child.n_edges > 0 && stacks_.can_continue(next)) walk(edge.child, next, trie, mask);
  }
}

// ---- GrammarMatcher --------------------------------------------------------------------------

GrammarMatcher::GrammarMatcher(std::shared_ptr<ConstrainedGrammar> grammar)
    : grammar_(std::move(grammar)), state_(grammar_->stacks_.start()) {}

bool GrammarMatcher::finished() const {
  std::lock_guard<std::mutex> lock(grammar_->mutex_);
  return ended_ || (grammar_->stacks_.accepts(state_) && !grammar_->stacks_.can_continue(state_));
}

void GrammarMatcher::allowed(uint32_t* words) const {
  const TokenVocabulary& vocab = grammar_->vocabulary();
  std::fill(words, words + vocab.mask_words(), 0u);
  if (ended_) return;
  std::lock_guard<std::mutex> lock(grammar_->mutex_);
  const ConstrainedGrammar::Mask& m = grammar_->state_mask(state_, position_);
  std::copy(m.begin(), m.end(), words);
  if (grammar_->stacks_.accepts(state_))
    for (int32_t eos : vocab.eos_ids()) words[size_t(eos) / 32] |= 1u << (eos % 32);
}

bool GrammarMatcher::accept(int32_t token) {
  const TokenVocabulary& vocab = grammar_->vocabulary();
  if (ended_ || token < 0 || token >= vocab.size()) return false;
  std::lock_guard<std::mutex> lock(grammar_->mutex_);
  if (std::find(vocab.eos_ids().begin(), vocab.eos_ids().end(), token) != vocab.eos_ids().end()) {
    if (!grammar_->stacks_.accepts(state_)) return false;
    ended_ = true;
    return true;
  }
  const std::string& bytes = vocab.bytes(token, position_);
  if (bytes.empty()) return false;
  StateId state = state_;
  for (char c : bytes) {
    if (!grammar_->stacks_.can_continue(state)) return false;
    state = grammar_->stacks_.next(state, uint8_t(c));
    if (state == kDeadState || grammar_->stacks_.overflowed(state)) return false;
  }
  state_ = state;
  position_ = TokenPosition::Later;
  return true;
}

}  // namespace brisk::grammar
