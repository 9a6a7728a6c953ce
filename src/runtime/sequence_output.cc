#include "runtime/sequence_output.h"

namespace brisk {

SequenceOutput::SequenceOutput(const Tokenizer& tokenizer, std::vector<std::string> stops, OutputLimits limits,
                               int64_t prompt_tokens, std::function<bool(int32_t)> is_eos)
    : decoder_(tokenizer), stopper_(std::move(stops)), limits_(limits), length_(prompt_tokens),
      is_eos_(std::move(is_eos)) {}

SequenceOutput::Step SequenceOutput::push(int32_t token, GrammarProgress grammar) {
  Step step;
  if (limits_.stop_at_eos && is_eos_(token)) {
    step.accepted = false;
    step.text = flush();
    step.ended = StopReason::Eos;
    return step;
  }
  ++generated_;
  ++length_;
  step.text = stopper_.push(decoder_.push(token));
  if (stopper_.stopped()) {
    step.ended = StopReason::StopString;
  } else if (grammar == GrammarProgress::Complete) {
    step.ended = StopReason::Grammar;
  } else if (generated_ >= limits_.max_new_tokens) {
    step.ended = StopReason::Length;
  } else if (length_ >= limits_.context) {
    step.ended = StopReason::Context;
  }
  if (step.ended) step.text += flush();
  return step;
}

std::string SequenceOutput::flush() {
  if (stopper_.stopped()) return "";
  return stopper_.push(decoder_.flush()) + stopper_.flush();
}

}  // namespace brisk
