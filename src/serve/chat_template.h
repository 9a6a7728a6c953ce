// TEMPORARY STAND-IN (serve branch): the chat branch owns src/serve/chat_template.{h,cc}; this file
// only declares the API the server codes against so the branch compiles. On merge, take the chat
// branch's version of both files.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"

namespace brisk {

struct ChatMessage {
  std::string role, content;
};

class ChatTemplate {
 public:
  static Result<ChatTemplate> from_tokenizer_config(const std::filesystem::path& model_dir);
  Result<std::string> apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt);
};

}  // namespace brisk
