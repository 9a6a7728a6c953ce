#include "serve/chat_session.h"

namespace brisk {

ChatSession::ChatSession(Engine& engine, ChatTemplate chat_template, std::optional<std::string> system)
    : engine_(engine), template_(std::move(chat_template)) {
  if (system) messages_.push_back({"system", *system});
  kept_ = messages_.size();
}

Result<GenerateResult> ChatSession::reply(const std::string& user, const ChatReplyOptions& options,
                                          const std::function<void(const std::string&)>& on_text) {
  messages_.push_back({"user", user});
  auto prompt = template_.apply(messages_, GenerationPrompt::kAppend);
  if (!prompt.ok()) {
    messages_.pop_back();
    return prompt.error();
  }
  GenerateRequest request;
  request.prompt = std::move(prompt).value();
  request.add_special = AddSpecial::No;  // the template writes its own special tokens
  request.sampling = options.sampling;
  request.max_new_tokens = options.max_new_tokens;
  request.cancel = options.cancel;
  auto result = engine_.generate(request, on_text);
  if (!result.ok()) {
    messages_.pop_back();
    return result.error();
  }
  messages_.push_back({"assistant", result->text});
  return result;
}

void ChatSession::reset() { messages_.resize(kept_); }

}  // namespace brisk
