// POST /tokenize and /detokenize (vLLM's shapes): the server's own tokenizer and chat template,
// so clients count and cut tokens exactly as generation will. Part of OpenAiServer.
#include "serve/openai_response.h"
#include "serve/openai_server.h"
#include "tokenizer/utf8.h"

namespace brisk::serve {

void OpenAiServer::handle_tokenize(const HttpRequest& req, HttpExchange& exchange) {
  auto body = parse_tokenize_body(req.body);
  if (!body) return reply_error("", exchange, body.error());
  if (auto unknown = check_model(body->model)) return reply_error("", exchange, *unknown);
  std::vector<int32_t> ids;
  if (body->prompt) {
    if (auto valid = utf8::require_valid(*body->prompt, "'prompt'"); !valid)
      return reply_error("", exchange, invalid_field("prompt", valid.error().message));
    ids = tokenizer_.encode(*body->prompt, body->add_special_tokens ? AddSpecial::Yes : AddSpecial::No);
  } else {
    auto rendered = render_chat(body->messages, body->render);
    if (!rendered) return reply_error("", exchange, rendered.error());
    ids = std::move(rendered.value());
  }
  exchange.respond(json_response(200, dump_json({{"tokens", ids}, {"count", ids.size()}, {"max_model_len", context_}})));
}

void OpenAiServer::handle_detokenize(const HttpRequest& req, HttpExchange& exchange) {
  auto body = parse_detokenize_body(req.body);
  if (!body) return reply_error("", exchange, body.error());
  if (auto unknown = check_model(body->model)) return reply_error("", exchange, *unknown);
  for (int32_t id : body->tokens)
    if (id >= vocab_size_)
      return reply_error("", exchange, invalid_field("tokens", "token id " + std::to_string(id) +
                                                                   " is outside the vocabulary (" +
                                                                   std::to_string(vocab_size_) + " tokens)"));
  exchange.respond(json_response(200, dump_json({{"prompt", tokenizer_.decode(body->tokens)}})));
}

}  // namespace brisk::serve
