#include "serve/chat_template.h"

#include <fstream>
#include <sstream>

#include "core/mapped_file.h"
#include "formats/gguf.h"
#include "formats/json_file.h"
#include "serve/jinja_builtins.h"
#include "tokenizer/tokenizer_config.h"

namespace brisk {
namespace {

std::string describe(const jinja::TemplateError& e) {
  if (e.origin == jinja::TemplateError::Origin::kRaisedByTemplate) return e.what();
  return "chat template line " + std::to_string(e.line) + ": " + e.what();
}

jinja::Value strftime_now(const jinja::CallArgs& args, std::optional<std::time_t> now) {
  const std::string& format =
      jinja::expect_string(jinja::argument(args, 0, "format"), "strftime_now() format");
  const std::time_t t = now.value_or(std::time(nullptr));
  std::tm local{};
  localtime_r(&t, &local);
  char buffer[512];
  const size_t n = format.size() < 128 ? std::strftime(buffer, sizeof(buffer), format.c_str(), &local) : 0;
  if (n == 0 && !format.empty()) throw jinja::TemplateError("strftime_now(): format too long or unsupported");
  return jinja::Value(std::string(buffer, n));
}

// "chat_template" is a string, or a list of {"name", "template"} (one named "default").
Result<std::string> template_from_config(const Json& config, const std::string& where) {
  const auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) return make_error("");
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array())
    return make_error(where + ": chat_template: expected a string or a list of {name, template}");
  for (const Json& entry : *it) {
    if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
        entry["template"].is_string()) {
      return entry["template"].get<std::string>();
    }
  }
  return make_error(where + ": chat_template: a list of templates without one named \"default\"");
}

Result<std::string> read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path.string() + ": cannot open");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

Result<ChatTemplate> ChatTemplate::parse(std::string source, std::optional<std::string> bos_token,
                                         std::optional<std::string> eos_token) {
  ChatTemplate result;
  try {
    result.program_ = std::make_shared<const jinja::NodeList>(jinja::parse_template(source));
  } catch (const jinja::TemplateError& e) {
    return make_error(describe(e));
  } catch (const std::exception& e) {
    return make_error(std::string("chat template: ") + e.what());
  }
  result.source_ = std::move(source);
  result.bos_token_ = std::move(bos_token);
  result.eos_token_ = std::move(eos_token);
  return result;
}

namespace {

struct SpecialTokenTexts {
  std::optional<std::string> bos, eos;
};

// BOS/EOS texts for templates: a folder's tokenizer_config.json, or a GGUF file's token ids looked
// up in tokenizer.ggml.tokens.
Result<SpecialTokenTexts> special_token_texts(const std::filesystem::path& model) {
  if (!is_gguf_path(model)) {
    BRISK_ASSIGN(config, read_tokenizer_config(model));
    return SpecialTokenTexts{config.bos_token, config.eos_token};
  }
  BRISK_ASSIGN(file, GgufFile::open(model));
  SpecialTokenTexts texts;
  auto tokens = file->strings("tokenizer.ggml.tokens");
  if (!tokens) return texts;
  auto token_text = [&](const char* key) -> std::optional<std::string> {
    auto id = file->optional_integer(key);
    if (!id || !id.value() || *id.value() < 0 || *id.value() >= int64_t(tokens.value()->size())) return std::nullopt;
    return (*tokens.value())[size_t(*id.value())];
  };
  texts.bos = token_text("tokenizer.ggml.bos_token_id");
  texts.eos = token_text("tokenizer.ggml.eos_token_id");
  return texts;
}

// A GGUF file's template: tokenizer.chat_template, as llama.cpp's converter stores it.
Result<ChatTemplate> from_gguf(const std::filesystem::path& path) {
  BRISK_ASSIGN(file, GgufFile::open(path));
  BRISK_ASSIGN(source, file->optional_string("tokenizer.chat_template"));
  if (!source) return make_error(path.string() + ": the GGUF file has no tokenizer.chat_template");
  BRISK_ASSIGN(texts, special_token_texts(path));
  auto parsed = ChatTemplate::parse(std::move(*source), texts.bos, texts.eos);
  if (!parsed.ok()) return make_error(path.string() + ": tokenizer.chat_template: " + parsed.error().message);
  return parsed;
}

}  // namespace

Result<ChatTemplate> ChatTemplate::from_tokenizer_config(const std::filesystem::path& model_dir) {
  if (is_gguf_path(model_dir)) return from_gguf(model_dir);
  const std::filesystem::path config_path = model_dir / "tokenizer_config.json";
  BRISK_ASSIGN(tokens, read_tokenizer_config(model_dir));
  std::string source;
  std::string where;
  if (path_exists(model_dir / "chat_template.jinja")) {
    where = (model_dir / "chat_template.jinja").string();
    BRISK_ASSIGN(text, read_text(model_dir / "chat_template.jinja"));
    source = std::move(text);
  } else {
    where = config_path.string();
    if (!path_exists(config_path)) {
      return make_error(model_dir.string() +
                        ": the model has no chat_template in tokenizer_config.json (no such file)");
    }
    BRISK_ASSIGN(config, read_json_file(config_path));
    if (!config.is_object()) return make_error(where + ": expected a JSON object");
    auto found = template_from_config(config, where);
    if (!found.ok()) {
      if (!found.error().message.empty()) return found.error();
      return make_error(model_dir.string() + ": the model has no chat_template in tokenizer_config.json");
    }
    source = std::move(found.value());
  }
  auto parsed = parse(std::move(source), tokens.bos_token, tokens.eos_token);
  if (!parsed.ok()) return make_error(where + ": " + parsed.error().message);
  return parsed;
}

Result<ChatTemplate> ChatTemplate::from_file(const std::filesystem::path& file,
                                            const std::filesystem::path& model_dir) {
  BRISK_ASSIGN(source, read_text(file));
  auto parsed = from_source(std::move(source), model_dir);
  if (!parsed.ok()) return make_error(file.string() + ": " + parsed.error().message);
  return parsed;
}

Result<ChatTemplate> ChatTemplate::from_source(std::string source, const std::filesystem::path& model_dir) {
  BRISK_ASSIGN(texts, special_token_texts(model_dir));
  return parse(std::move(source), texts.bos, texts.eos);
}

Result<std::string> ChatTemplate::apply(const std::vector<ChatMessage>& messages,
                                        GenerationPrompt prompt) const {
  nlohmann::ordered_json json = nlohmann::ordered_json::array();
  for (const ChatMessage& m : messages) json.push_back({{"role", m.role}, {"content", m.content}});
  return apply_json(json, prompt);
}

Result<std::string> ChatTemplate::apply_json(const nlohmann::ordered_json& messages, GenerationPrompt prompt,
                                             const ChatTemplateInputs& inputs) const {
  BRISK_CHECK(program_ != nullptr, "ChatTemplate used before parse()");
  try {
    jinja::ValueDict globals = jinja::standard_globals();
    globals.set("raise_exception", jinja::Value::function([](const jinja::CallArgs& args) -> jinja::Value {
                  throw jinja::TemplateError(jinja::argument(args, 0, "message").to_string(), 0,
                                             jinja::TemplateError::Origin::kRaisedByTemplate);
                }));
    const std::optional<std::time_t> now = inputs.now;
    globals.set("strftime_now", jinja::Value::function(
                                    [now](const jinja::CallArgs& args) { return strftime_now(args, now); }));
    if (bos_token_) globals.set("bos_token", jinja::Value(*bos_token_));
    if (eos_token_) globals.set("eos_token", jinja::Value(*eos_token_));
    globals.set("messages", jinja::value_from_json(messages));
    globals.set("tools", jinja::value_from_json(inputs.tools));
    globals.set("documents", jinja::Value::none());
    globals.set("add_generation_prompt", jinja::Value(prompt == GenerationPrompt::kAppend));
    if (inputs.variables.is_object()) {
      for (auto it = inputs.variables.begin(); it != inputs.variables.end(); ++it) {
        globals.set(it.key(), jinja::value_from_json(it.value()));
      }
    }
    return jinja::render_template(*program_, globals, limits_);
  } catch (const jinja::TemplateError& e) {
    return make_error(describe(e));
  } catch (const std::exception& e) {  // e.g. bad_alloc: a request must never take the server down
    return make_error(std::string("chat template: ") + e.what());
  }
}

}  // namespace brisk
