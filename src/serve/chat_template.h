// A model's chat template: the Jinja program in its tokenizer_config.json that turns a list of
// chat messages into the prompt text the model was trained on. Rendered by brisk's own Jinja
// subset (serve/jinja_*) in the environment transformers' apply_chat_template sets up:
// trim_blocks and lstrip_blocks on, raise_exception(), strftime_now(), tojson as json.dumps
// (ensure_ascii=False), and the variables messages, add_generation_prompt, tools (none),
// documents (none), bos_token and eos_token (undefined when the tokenizer has none).
#pragma once

#include <ctime>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "serve/jinja_ast.h"
#include "serve/jinja_eval.h"

namespace brisk {

struct ChatMessage {
  std::string role;
  std::string content;
};

// Whether the prompt ends with the header of an assistant turn for the model to complete.
enum class GenerationPrompt { kOmit, kAppend };

// What the OpenAI request adds beyond the messages.
struct ChatTemplateInputs {
  nlohmann::ordered_json tools = nullptr;                               // a list of tool schemas, or null
  nlohmann::ordered_json variables = nlohmann::ordered_json::object();  // extra template variables
  std::optional<std::time_t> now;  // strftime_now()'s clock; nullopt: the current local time
};

class ChatTemplate {
 public:
  // The template of a Hugging Face model folder: chat_template.jinja if present, else
  // tokenizer_config.json's "chat_template" (a string, or a list of {name, template} from which
  // "default" is taken). bos_token/eos_token come from tokenizer_config.json. A .gguf file gives
  // its tokenizer.chat_template metadata.
  static Result<ChatTemplate> from_tokenizer_config(const std::filesystem::path& model_dir);
  // A template file (--chat-template) with the folder's bos_token/eos_token.
  static Result<ChatTemplate> from_file(const std::filesystem::path& file, const std::filesystem::path& model_dir);
  // Template text (a per-request override) with the model's bos_token/eos_token.
  static Result<ChatTemplate> from_source(std::string source, const std::filesystem::path& model_dir);
  // Syntax errors name the template line.
  static Result<ChatTemplate> parse(std::string source, std::optional<std::string> bos_token,
                                    std::optional<std::string> eos_token);

  Result<std::string> apply(const std::vector<ChatMessage>& messages, GenerationPrompt prompt) const;
  // Messages as OpenAI-style JSON objects (they may carry tool_calls, null content, ...). An error
  // raised by the template itself (raise_exception) carries exactly the template's message, for
  // the server to return as a 400; other render errors name the template line.
  Result<std::string> apply_json(const nlohmann::ordered_json& messages, GenerationPrompt prompt,
                                 const ChatTemplateInputs& inputs = {}) const;

  const std::string& source() const { return source_; }
  void set_limits(const jinja::RenderLimits& limits) { limits_ = limits; }

 private:
  std::string source_;
  std::optional<std::string> bos_token_;
  std::optional<std::string> eos_token_;
  std::shared_ptr<const jinja::NodeList> program_;  // shared so copies are cheap
  jinja::RenderLimits limits_;
};

}  // namespace brisk
