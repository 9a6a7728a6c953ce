// The OpenAI-compatible server: routes (/v1/completions, /v1/chat/completions, /v1/models,
// /health, /metrics), API-key check, and graceful shutdown, on top of a RequestScheduler (one
// engine's Scheduler, or a ReplicaRouter over replicas: --dp). Knows HTTP
// and JSON; the scheduler below knows neither.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "runtime/embedding.h"
#include "runtime/request_scheduler.h"
#include "serve/chat_template.h"
#include "serve/http_server.h"
#include "serve/metrics.h"
#include "serve/openai_protocol.h"

namespace brisk::serve {

class GenerationSession;

struct EmbeddingsRequest {
  std::vector<std::vector<int32_t>> inputs;  // token ids, special tokens included
  bool base64 = false;
};

// The scheduler requests behind one generation request, with each one's prompt as echo shows it.
struct GenerationPlan {
  std::vector<CompletionRequest> requests;
  std::vector<std::string> prompt_texts;  // per request: the text given, or the ids' text
};

struct ServerOptions {
  HttpOptions http;
  // What /v1/models lists and requests may name (aliases); the first names the responses.
  std::vector<std::string> model_names;
  std::string api_key;     // empty: no authentication
  std::filesystem::path chat_template_file;  // empty: the model's own template
  // How tool calls are written (--tool-call-parser); nullopt: detected from the chat template.
  std::optional<ToolCallFormat> tool_call_format;
};

class OpenAiServer {
 public:
  // The scheduler and the engine's tokenizer must outlive the server. The chat template is loaded
  // from model_dir; without one the chat endpoint answers 400 saying why.
  OpenAiServer(RequestScheduler& scheduler, const std::filesystem::path& model_dir, ServerOptions options);

  Result<int> bind() { return http_.bind(); }
  void run() { http_.run(); }  // blocks until shutdown() has stopped the listener
  HttpServer::Counts counts() const { return http_.counts(); }
  int max_connections() const { return http_.max_connections(); }

  // Stops taking requests (503), lets in-flight ones finish for up to `grace`, cancels what is
  // left, then stops the listener. Thread-safe; a signal-waiting thread calls it.
  void shutdown(std::chrono::milliseconds grace);

 private:
  friend struct GenerationReply;
  using Exchange = std::shared_ptr<HttpExchange>;

  void add_routes();
  const std::string& model_name() const { return options_.model_names.front(); }
  // A 404 unless `requested` is empty (not given) or one of the served names.
  std::optional<ApiError> check_model(const std::string& requested) const;
  void handle_tokenize(const HttpRequest& req, HttpExchange& exchange);    // tokenize_handler.cc
  void handle_detokenize(const HttpRequest& req, HttpExchange& exchange);  // tokenize_handler.cc
  // generation_handler.cc: parses, submits and returns; the reply is written as events arrive.
  void handle_generation(Endpoint endpoint, const HttpRequest& req, const Exchange& exchange);
  ApiResult<GenerationPlan> build_requests(Endpoint endpoint, const std::string& body, GenerationParams& params);
  // tools: the request's tool list for the template (null: none).
  ApiResult<std::vector<int32_t>> render_chat(const ChatMessages& messages, const ChatRenderOptions& options,
                                              const nlohmann::ordered_json& tools = nullptr);
  // The tool-call format of the template this request renders with.
  ToolCallFormat tool_call_format(const ChatRenderOptions& options) const;
  void reply_error(const std::string& endpoint, HttpExchange& exchange, const ApiError& error);
  void handle_embeddings(const HttpRequest& req, HttpExchange& exchange);  // embeddings_handler.cc
  ApiResult<EmbeddingsRequest> parse_embeddings(const std::string& body);

  RequestScheduler& scheduler_;
  const Tokenizer& tokenizer_;
  int64_t context_;
  int64_t vocab_size_;
  ServerOptions options_;
  std::optional<ChatTemplate> chat_template_;
  std::string chat_template_error_;  // why there is none
  std::filesystem::path model_dir_;  // per-request templates read its BOS/EOS texts
  std::optional<PoolingConfig> pooling_;  // encoder models: how /v1/embeddings pools
  std::string embeddings_error_;          // why there is none
  int64_t embedding_width_ = 0, embedding_limit_ = 0;
  Metrics metrics_;
  std::atomic<bool> accepting_{true};
  std::atomic<int64_t> in_flight_{0};  // generation requests between submit and last byte
  HttpServer http_;
};

}  // namespace brisk::serve
