// TEMPORARY STAND-IN (serve branch): see chat_template.h. Reports a missing template exactly as
// the real one must (a clear error) and refuses to render anything else.
#include "serve/chat_template.h"

#include "formats/json_file.h"

namespace brisk {

Result<ChatTemplate> ChatTemplate::from_tokenizer_config(const std::filesystem::path& model_dir) {
  const auto path = model_dir / "tokenizer_config.json";
  if (!std::filesystem::exists(path)) return make_error(path.string() + " does not exist, so there is no chat template");
  BRISK_ASSIGN(config, read_json_file(path));
  if (!config.contains("chat_template"))
    return make_error(path.string() + " has no chat_template: this model was not trained for chat");
  return ChatTemplate{};
}

Result<std::string> ChatTemplate::apply(const std::vector<ChatMessage>&, bool) {
  return make_error("chat templates are not implemented in this build yet");
}

}  // namespace brisk
