// A multi-turn conversation with one engine, as `brisk chat` holds it: the messages so far,
// rendered by the model's chat template into one prompt per turn. The engine keeps the previous
// turn's keys and values (Engine::generate), so each turn runs only its new tokens.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "serve/chat_template.h"

namespace brisk {

struct ChatReplyOptions {
  SamplingParams sampling;
  int64_t max_new_tokens = 512;
  const std::atomic<bool>* cancel = nullptr;  // ends the reply at the next token (Ctrl-C)
};

class ChatSession {
 public:
  ChatSession(Engine& engine, ChatTemplate chat_template, std::optional<std::string> system);

  // Adds the user's message, streams the assistant's reply to on_text and keeps it in the
  // history (also a cancelled or cut reply, as far as it got). A turn that would not fit the
  // context is an error and leaves the history unchanged.
  Result<GenerateResult> reply(const std::string& user, const ChatReplyOptions& options,
                               const std::function<void(const std::string&)>& on_text = {});
  // Forgets every turn but the system message.
  void reset();
  const std::vector<ChatMessage>& messages() const { return messages_; }

 private:
  Engine& engine_;
  ChatTemplate template_;
  std::vector<ChatMessage> messages_;
  size_t kept_ = 0;  // messages reset() keeps (the system message)
};

}  // namespace brisk
