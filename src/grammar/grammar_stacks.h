// The parse state of a Grammar (grammar.h). A stack is a list of element positions: the top is the
// byte-set element to match next, the ones below it where each enclosing rule goes on once the
// inner one ends. A state is the set of stacks still alive (an ambiguous grammar keeps several),
// and whether some stack has ended, i.e. the bytes so far are a whole sentence.
//
// Stacks and states are interned: a stack is (top position, id of the stack below) and a state a
// sorted list of stack ids, each stored once, so equal ones have equal ids. Transitions
// state x byte -> state are remembered in a 256-entry row per state: a JSON string's characters, a
// number's digits, every repetition returns to the same few states, so after the first bytes
// advancing is one array read. That is what makes walking a vocabulary's trie (token_masks.h) cheap.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

#include "grammar/grammar.h"

namespace brisk::grammar {

using StackId = int32_t;
using StateId = int32_t;
constexpr StateId kDeadState = 0;  // no stack alive and no sentence ended: the bytes are refused

// Alternatives held at once before the grammar is refused as too ambiguous (a grammar like
// x ::= "a" x "b" | "a" x "c" | "" doubles them per byte).
constexpr size_t kMaxStacks = 4096;

class GrammarStacks {
 public:
  explicit GrammarStacks(Grammar grammar);

  // The state before any byte.
  StateId start() const { return start_; }
  // The state after `byte` (kDeadState: not allowed here).
  StateId next(StateId state, uint8_t byte);
  // The bytes so far are a whole sentence.
  bool accepts(StateId state) const { return states_[size_t(state)].accepts; }
  // More bytes may follow.
  bool can_continue(StateId state) const { return !states_[size_t(state)].stacks.empty(); }
  // A byte led to more than kMaxStacks alternatives: the state was cut off there (it is dead).
  bool overflowed(StateId state) const { return states_[size_t(state)].overflow; }
  // Bytes held by interned stacks and states (grows with the parse contexts outputs visit).
  size_t footprint_bytes() const { return footprint_; }

 private:
  struct Node {
    int32_t position;  // into grammar().elements()
    StackId below;     // -1: the bottom
  };
  struct State {
    std::vector<StackId> stacks;  // sorted, each once; every top is a byte-set element
    bool accepts = false;
    bool overflow = false;
    std::unique_ptr<StateId[]> row;  // [256] next states, -1 unknown; allocated on first use
  };
  StackId intern(int32_t position, StackId below);
  StateId intern(State state);
  // Adds to `out` the stacks that `position` over `below` becomes once every rule at its top is
  // expanded and every finished one popped.
  void expand(int32_t position, StackId below, State& out, int depth);

  Grammar grammar_;
  std::vector<Node> nodes_;
  std::unordered_map<uint64_t, StackId> node_ids_;
  std::vector<State> states_;
  std::map<std::pair<std::vector<StackId>, int>, StateId> state_ids_;  // (stacks, flags) -> id
  StateId start_ = kDeadState;
  size_t footprint_ = 0;
};

}  // namespace brisk::grammar
