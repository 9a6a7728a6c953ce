#include "grammar/grammar_stacks.h"

#include <algorithm>

namespace brisk::grammar {

GrammarStacks::GrammarStacks(Grammar grammar) : grammar_(std::move(grammar)) {
  intern(State{});  // kDeadState
  State start;
  for (int32_t alternative : grammar_.alternatives(grammar_.root())) expand(alternative, -1, start, 0);
  start_ = intern(std::move(start));
}

StackId GrammarStacks::intern(int32_t position, StackId below) {
  const uint64_t key = (uint64_t(uint32_t(position)) << 32) | uint32_t(below);
  auto [it, added] = node_ids_.try_emplace(key, StackId(nodes_.size()));
  if (added) {
    nodes_.push_back({position, below});
    footprint_ += sizeof(Node) + 32;  // the node and its hash entry
  }
  return it->second;
}

StateId GrammarStacks::intern(State state) {
  std::sort(state.stacks.begin(), state.stacks.end());
  state.stacks.erase(std::unique(state.stacks.begin(), state.stacks.end()), state.stacks.end());
  if (state.overflow || state.stacks.size() > kMaxStacks) {  // cut off: dead, remembered as overflowed
    state.stacks.clear();
    state.accepts = false;
    state.overflow = true;
  }
  const int flags = int(state.accepts) | int(state.overflow) << 1;
  auto key = std::make_pair(state.stacks, flags);
  if (auto it = state_ids_.find(key); it != state_ids_.end()) return it->second;
  const StateId id = StateId(states_.size());
  footprint_ += sizeof(State) + 2 * state.stacks.size() * sizeof(StackId) + 64;  // the state and its key
  states_.push_back(std::move(state));
  state_ids_.emplace(std::move(key), id);
  return id;
}

void GrammarStacks::expand(int32_t position, StackId below, State& out, int depth) {
  const std::vector<Element>& elements = grammar_.elements();
  // Pop finished rules: an End continues where the enclosing rule left off.
  while (elements[size_t(position)].kind == Element::Kind::End) {
    if (below < 0) {
      out.accepts = true;
      return;
    }
    position = nodes_[size_t(below)].position;
    below = nodes_[size_t(below)].below;
  }
  const Element& e = elements[size_t(position)];
  if (e.kind == Element::Kind::Bytes) {
    out.stacks.push_back(intern(position, below));
    return;
  }
  // A rule: remember where to go on after it, unless that is the end of this alternative (a
  // tail call, so repetition R ::= x R does not grow the stack).
  const int32_t after = position + 1;
  const StackId rest = elements[size_t(after)].kind == Element::Kind::End ? below : intern(after, below);
  // Depth is bounded by the grammar (left recursion is refused at parse time), the stack count
  // by kMaxStacks (duplicates included, a generous multiple).
  BRISK_CHECK(depth < 100000, "GrammarStacks: runaway expansion");
  if (out.overflow) return;
  if (out.stacks.size() > 16 * kMaxStacks) {
    out.overflow = true;
    return;
  }
  for (int32_t start : grammar_.alternatives(e.rule)) expand(start, rest, out, depth + 1);
}

StateId GrammarStacks::next(StateId state, uint8_t byte) {
  State& s = states_[size_t(state)];
  if (!s.row) {
    s.row.reset(new StateId[256]);
    footprint_ += 256 * sizeof(StateId);
    std::fill(s.row.get(), s.row.get() + 256, StateId(-1));
  }
  if (s.row[byte] >= 0) return s.row[byte];
  State out;
  for (StackId stack : s.stacks) {
    const Node node = nodes_[size_t(stack)];
    if (grammar_.elements()[size_t(node.position)].bytes.has(byte)) expand(node.position + 1, node.below, out, 0);
  }
  const StateId id = out.stacks.empty() && !out.accepts && !out.overflow ? kDeadState : intern(std::move(out));
  states_[size_t(state)].row[byte] = id;  // interning may have moved states_
  return id;
}

}  // namespace brisk::grammar
