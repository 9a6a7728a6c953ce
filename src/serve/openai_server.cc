#include "serve/openai_server.h"

#include <chrono>
#include <thread>

#include "serve/auth.h"
#include "serve/openai_response.h"

namespace brisk::serve {

OpenAiServer::OpenAiServer(Scheduler& scheduler, const std::filesystem::path& model_dir, ServerOptions options)
    : scheduler_(scheduler),
      tokenizer_(scheduler.engine().tokenizer()),
      context_(scheduler.engine().context()),
      vocab_size_(scheduler.engine().model().config().vocab_size),
      options_(std::move(options)),
      http_(options_.http) {
  auto chat = ChatTemplate::from_tokenizer_config(model_dir);
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

void OpenAiServer::reply_error(const std::string& endpoint, httplib::Response& res, const ApiError& error) {
  set_json(res, error.status, dump_json(error_json(error)));
  if (error.status == 429) res.set_header("Retry-After", "1");
  if (!endpoint.empty()) metrics_.count_request(endpoint, error.status);
}

void OpenAiServer::add_routes() {
  httplib::Server& routes = http_.routes();
  // The key guards /v1 only: health checks and Prometheus scrapers carry no OpenAI key.
  routes.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.path.rfind("/v1/", 0) != 0 || bearer_authorized(req.get_header_value("Authorization"), options_.api_key))
      return httplib::Server::HandlerResponse::Unhandled;
    ApiError error{401, "missing or wrong API key: send 'Authorization: Bearer <key>'", "invalid_request_error", "",
                   "invalid_api_key"};
    reply_error("", res, error);
    res.set_header("WWW-Authenticate", "Bearer");
    return httplib::Server::HandlerResponse::Handled;
  });
  routes.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (accepting_)
      set_json(res, 200, R"({"status":"ok"})");
    else
      set_json(res, 503, R"({"status":"shutting down"})");
  });
  routes.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.render(scheduler_.stats()), "text/plain; version=0.0.4; charset=utf-8");
  });
  auto model_json = [this] {
    return Json{{"id", options_.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "brisk"}};
  };
  routes.Get("/v1/models", [model_json](const httplib::Request&, httplib::Response& res) {
    set_json(res, 200, dump_json({{"object", "list"}, {"data", Json::array({model_json()})}}));
  });
  routes.Get(R"(/v1/models/(.+))", [this, model_json](const httplib::Request& req, httplib::Response& res) {
    if (req.matches[1] == options_.model_name)
      set_json(res, 200, dump_json(model_json()));
    else
      reply_error("", res, ApiError{404, "the model '" + std::string(req.matches[1]) + "' does not exist",
                                    "invalid_request_error", "model", "model_not_found"});
  });
  routes.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_generation(Endpoint::Completions, req, res);
  });
  routes.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_generation(Endpoint::ChatCompletions, req, res);
  });
  routes.Post("/v1/embeddings", [this](const httplib::Request& req, httplib::Response& res) {
    handle_embeddings(req, res);
  });
}

void OpenAiServer::shutdown(std::chrono::milliseconds grace) {
  accepting_ = false;
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (in_flight_ > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // Everything finished within the grace period, or what is left is cancelled (its clients get
  // a finished event, then the connection closes).
  scheduler_.shutdown(in_flight_ == 0 ? Scheduler::Drain::Finish : Scheduler::Drain::Cancel);
  const auto flush_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (in_flight_ > 0 && std::chrono::steady_clock::now() < flush_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  http_.stop();
}

}  // namespace brisk::serve
