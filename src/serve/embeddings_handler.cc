// POST /v1/embeddings: OpenAI's embeddings API over an encoder model. Each input is encoded on the
// scheduler's worker thread (which owns the engine), pooled as the model folder's
// sentence-transformers config says; "float" or "base64" (little-endian float32, what the openai
// client asks for by default) encoding.
#include <cstring>

#include "runtime/embedding.h"
#include "serve/openai_response.h"
#include "serve/openai_server.h"

namespace brisk::serve {

namespace {

std::string base64(const std::vector<float>& values) {
  static const char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());  // x86: little-endian, as OpenAI's
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const uint32_t b0 = uint8_t(bytes[i]), b1 = i + 1 < bytes.size() ? uint8_t(bytes[i + 1]) : 0,
                   b2 = i + 2 < bytes.size() ? uint8_t(bytes[i + 2]) : 0;
    const uint32_t word = (b0 << 16) | (b1 << 8) | b2;
    out += kDigits[(word >> 18) & 63];
    out += kDigits[(word >> 12) & 63];
    out += i + 1 < bytes.size() ? kDigits[(word >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kDigits[word & 63] : '=';
  }
  return out;
}

}  // namespace

ApiResult<EmbeddingsRequest> OpenAiServer::parse_embeddings(const std::string& text) {
  auto body = parse_embeddings_body(text);
  if (!body) return body.error();
  if (auto unknown = check_model(body->model)) return *unknown;
  if (body->dimensions != 0 && body->dimensions != embedding_width_)
    return invalid_field("dimensions", "'dimensions' is not supported: this model's embeddings have " +
                                           std::to_string(embedding_width_) + " dimensions");
  EmbeddingsRequest r;
  r.base64 = body->base64;
  for (PromptInput& input : body->inputs) {
    if (auto* text = std::get_if<std::string>(&input))
      r.inputs.push_back(tokenizer_.encode(*text, AddSpecial::Yes));
    else
      r.inputs.push_back(std::move(std::get<std::vector<int32_t>>(input)));
  }
  for (size_t i = 0; i < r.inputs.size(); ++i) {
    if (r.inputs[i].empty()) return invalid_field("input", "input " + std::to_string(i) + " gives no tokens");
    if (int64_t(r.inputs[i].size()) > embedding_limit_)
      return ApiError{400, "input " + std::to_string(i) + " has " + std::to_string(r.inputs[i].size()) +
                               " tokens, more than the model's " + std::to_string(embedding_limit_),
                      "invalid_request_error", "input", "context_length_exceeded"};
    for (int32_t id : r.inputs[i])
      if (id >= vocab_size_)
        return invalid_field("input", "token id " + std::to_string(id) + " is outside the vocabulary of " +
                                          std::to_string(vocab_size_));
  }
  return r;
}

void OpenAiServer::handle_embeddings(const HttpRequest& req, HttpExchange& exchange) {
  const std::string label = "embeddings";
  if (!accepting_) return reply_error(label, exchange, ApiError{503, "the server is shutting down", "server_error", "", "shutting_down"});
  if (!pooling_)
    return reply_error(label, exchange, ApiError{400, embeddings_error_, "invalid_request_error", "model", "unsupported_model"});
  auto request = parse_embeddings(req.body);
  if (!request) return reply_error(label, exchange, request.error());
  Json data = Json::array();
  int64_t tokens = 0;
  std::string failure;
  const bool ran = scheduler_.run_on_worker([&](Engine& engine) {
    for (size_t i = 0; i < request->inputs.size() && failure.empty(); ++i) {
      auto e = embed(engine, request->inputs[i], *pooling_);
      if (!e) {
        failure = e.error().message;
        break;
      }
      tokens += e->tokens;
      Json item = {{"object", "embedding"}, {"index", i}};
      if (request->base64)
        item["embedding"] = base64(e->vector);
      else
        item["embedding"] = e->vector;
      data.push_back(std::move(item));
    }
  });
  if (!ran) return reply_error(label, exchange, ApiError{503, "the server is shutting down", "server_error", "", "shutting_down"});
  if (!failure.empty()) return reply_error(label, exchange, ApiError{500, failure, "server_error", "", ""});
  exchange.note_tokens(tokens, 0, -1);
  exchange.respond(json_response(200, dump_json({{"object", "list"}, {"data", data}, {"model", model_name()},
                                                 {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}})));
  metrics_.count_request(label, 200);
}

}  // namespace brisk::serve
