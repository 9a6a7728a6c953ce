#include "serve/openai_server.h"

#include <chrono>
#include <thread>

#include "serve/auth.h"
#include "serve/openai_response.h"

namespace brisk::serve {

OpenAiServer::OpenAiServer(RequestScheduler& scheduler, const std::filesystem::path& model_dir, ServerOptions options)
    : scheduler_(scheduler),
      tokenizer_(scheduler.engine().tokenizer()),
      context_(scheduler.engine().context()),
      vocab_size_(scheduler.engine().model().config().vocab_size),
      options_(std::move(options)),
      model_dir_(model_dir),
      http_(options_.http) {
  auto chat = options_.chat_template_file.empty() ? ChatTemplate::from_tokenizer_config(model_dir)
                                                  : ChatTemplate::from_file(options_.chat_template_file, model_dir);
  if (chat)
    chat_template_.emplace(std::move(chat.value()));
  else
    chat_template_error_ = chat.error().message;
  Model& model = scheduler.engine().model();
  if (model.output() == ModelOutput::HiddenStates) {
    auto pooling = read_pooling_config(model_dir);
    if (pooling)
      pooling_ = *pooling;
    else
      embeddings_error_ = pooling.error().message;
    embedding_width_ = model.output_width();
    embedding_limit_ = std::min(scheduler.engine().context(), model.max_rows());
  } else {
    embeddings_error_ = "model_type '" + model.config().model_type +
                        "' does not output hidden states: /v1/embeddings needs an encoder model such as BertModel";
  }
  add_routes();
}

void OpenAiServer::reply_error(const std::string& endpoint, HttpExchange& exchange, const ApiError& error) {
  HttpResponse response = json_response(error.status, dump_json(error_json(error)));
  if (error.status == 429) response.headers.emplace_back("Retry-After", "1");
  if (!endpoint.empty()) metrics_.count_request(endpoint, error.status);
  exchange.respond(std::move(response));
}

void OpenAiServer::add_routes() {
  // The transport's own refusals (404, 413, 431, ...) are OpenAI-shaped too.
  http_.set_error_page([](int status, const std::string& message) {
    ApiError error{status, message, status >= 500 ? "server_error" : "invalid_request_error", "", ""};
    if (status == 404) error.code = "not_found";
    return json_response(status, dump_json(error_json(error)));
  });
  // The key guards /v1 and the tokenizer endpoints (health checks and Prometheus scrapers carry no
  // OpenAI key), and is checked on the request head: an unauthenticated body is never read.
  http_.set_gate([this](const HttpRequest& head) -> std::optional<HttpResponse> {
    const bool guarded = head.path.rfind("/v1/", 0) == 0 || head.path == "/tokenize" || head.path == "/detokenize";
    if (!guarded || bearer_authorized(head.header("Authorization"), options_.api_key)) return std::nullopt;
    ApiError error{401, "missing or wrong API key: send 'Authorization: Bearer <key>'", "invalid_request_error", "",
                   "invalid_api_key"};
    HttpResponse response = json_response(401, dump_json(error_json(error)));
    response.headers.emplace_back("WWW-Authenticate", "Bearer");
    return response;
  });
  http_.route("GET", "/health", RunOn::IoThread, [this](const HttpRequest&, const Exchange& exchange) {
    exchange->respond(accepting_ ? json_response(200, R"({"status":"ok"})")
                                 : json_response(503, R"({"status":"shutting down"})"));
  });
  http_.route("GET", "/metrics", RunOn::IoThread, [this](const HttpRequest&, const Exchange& exchange) {
    exchange->respond(HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8",
                                   metrics_.render(scheduler_.stats(), http_.counts()), {}});
  });
  auto model_json = [](const std::string& name) {
    return Json{{"id", name}, {"object", "model"}, {"created", 0}, {"owned_by", "brisk"}};
  };
  http_.route("GET", "/v1/models", RunOn::IoThread, [this, model_json](const HttpRequest&, const Exchange& exchange) {
    Json data = Json::array();
    for (const std::string& name : options_.model_names) data.push_back(model_json(name));
    exchange->respond(json_response(200, dump_json({{"object", "list"}, {"data", data}})));
  });
  http_.route("GET", "/v1/models/", RunOn::IoThread, [this, model_json](const HttpRequest& req, const Exchange& exchange) {
    const std::string name = req.path.substr(std::string("/v1/models/").size());
    if (auto unknown = check_model(name))
      reply_error("", *exchange, *unknown);
    else
      exchange->respond(json_response(200, dump_json(model_json(name))));
  });
  http_.route("POST", "/tokenize", RunOn::HandlerPool, [this](const HttpRequest& req, const Exchange& exchange) {
    handle_tokenize(req, *exchange);
  });
  http_.route("POST", "/detokenize", RunOn::HandlerPool, [this](const HttpRequest& req, const Exchange& exchange) {
    handle_detokenize(req, *exchange);
  });
  http_.route("POST", "/v1/completions", RunOn::HandlerPool, [this](const HttpRequest& req, const Exchange& exchange) {
    handle_generation(Endpoint::Completions, req, exchange);
  });
  http_.route("POST", "/v1/chat/completions", RunOn::HandlerPool, [this](const HttpRequest& req, const Exchange& exchange) {
    handle_generation(Endpoint::ChatCompletions, req, exchange);
  });
  http_.route("POST", "/v1/embeddings", RunOn::HandlerPool, [this](const HttpRequest& req, const Exchange& exchange) {
    handle_embeddings(req, *exchange);
  });
}

std::optional<ApiError> OpenAiServer::check_model(const std::string& requested) const {
  if (requested.empty()) return std::nullopt;
  for (const std::string& name : options_.model_names)
    if (name == requested) return std::nullopt;
  std::string served;
  for (const std::string& name : options_.model_names) served += (served.empty() ? "'" : ", '") + name + "'";
  return ApiError{404, "the model '" + requested + "' does not exist; this server serves " + served,
                  "invalid_request_error", "model", "model_not_found"};
}

void OpenAiServer::shutdown(std::chrono::milliseconds grace) {
  accepting_ = false;
  // Idle and half-sent connections close now (a slow client cannot hold the server open).
  http_.stop_accepting();
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (in_flight_ > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // Everything finished within the grace period, or what is left is cancelled (its clients get
  // a finished event, then the connection closes).
  scheduler_.shutdown(in_flight_ == 0 ? RequestScheduler::Drain::Finish : RequestScheduler::Drain::Cancel);
  const auto flush_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (in_flight_ > 0 && std::chrono::steady_clock::now() < flush_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  http_.stop();
}

}  // namespace brisk::serve
