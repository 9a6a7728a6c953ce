// What happens to each token a sequence samples, defined once for `generate` and the scheduler:
// EOS ends it (the token is not part of the output), otherwise the token is decoded to text
// (UTF-8 reassembled across tokens), stop strings are watched for (text that may begin one is
// held back), and the sequence ends at max_new_tokens or when it fills the context.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/stop_matcher.h"
#include "tokenizer/stream_decoder.h"

namespace brisk {

// Grammar: constrained decoding matched a whole sentence that nothing can extend.
enum class StopReason { Length, Eos, StopString, Context, Cancelled, Grammar };
const char* stop_reason_name(StopReason r);

struct OutputLimits {
  int64_t max_new_tokens = 0;
  int64_t context = 0;      // positions the sequence may fill
  bool stop_at_eos = true;
};

class SequenceOutput {
 public:
  SequenceOutput(const Tokenizer& tokenizer, std::vector<std::string> stops, OutputLimits limits,
                 int64_t prompt_tokens, std::function<bool(int32_t)> is_eos);

  struct Step {
    bool accepted = true;             // false: the token was EOS and is not output
    std::string text;                 // safe to stream now (on the last step: everything left)
    std::optional<StopReason> ended;  // set on the sequence's last step
  };
  // The token sampled after the sequence's current last one (Complete: it ended the grammar's
  // sentence, so the sequence ends with it).
  Step push(int32_t token, GrammarProgress grammar = GrammarProgress::Open);
  // Text still held back (undecoded bytes, a possible stop-string prefix), for a sequence ended
  // from outside (cancelled). Empty once a stop string matched.
  std::string flush();
  int64_t generated() const { return generated_; }

 private:
  StreamDecoder decoder_;
  StopMatcher stopper_;
  OutputLimits limits_;
  int64_t length_;  // prompt + generated tokens
  int64_t generated_ = 0;
  std::function<bool(int32_t)> is_eos_;
};

}  // namespace brisk
