// POST /v1/completions and /v1/chat/completions: body -> scheduler requests -> one JSON response
// or an SSE stream. Part of OpenAiServer (openai_server.h).
#include "serve/generation_session.h"
#include "serve/openai_response.h"
#include "serve/openai_server.h"
#include "serve/sse.h"

namespace brisk::serve {

namespace {

const char* endpoint_label(Endpoint endpoint) {
  return endpoint == Endpoint::Completions ? "completions" : "chat_completions";
}

// Counts a generation request from submit until its response is fully written (or abandoned), so
// shutdown knows when the server is idle.
class InFlight {
 public:
  explicit InFlight(std::atomic<int64_t>& count) : count_(count) { ++count_; }
  ~InFlight() { --count_; }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::atomic<int64_t>& count_;
};

// The status nginx uses for "the client closed the connection before the response".
constexpr int kClientClosed = 499;

// Usage counts each prompt once however many choices it has (as OpenAI does).
Usage usage_of(const std::vector<ChoiceState>& choices, int64_t n) {
  Usage usage;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (int64_t(i) % n == 0) usage.prompt_tokens += choices[i].prompt_tokens;
    usage.completion_tokens += choices[i].completion_tokens;
  }
  return usage;
}

}  // namespace

ApiResult<std::vector<int32_t>> OpenAiServer::render_chat(const std::vector<ChatMessage>& messages) {
  if (!chat_template_)
    return invalid_field("messages",
                         "this model has no chat template, so /v1/chat/completions cannot turn messages into a prompt "
                         "(use /v1/completions with a plain prompt): " + chat_template_error_);
  Result<std::string> text = chat_template_->apply(messages, GenerationPrompt::kAppend);
  if (!text) return invalid_field("messages", "the model's chat template failed on these messages: " + text.error().message);
  // The template writes the special tokens (BOS included) itself, as transformers does.
  return tokenizer_.encode(text.value(), AddSpecial::No);
}

ApiResult<std::vector<CompletionRequest>> OpenAiServer::build_requests(Endpoint endpoint, const std::string& body,
                                                                       GenerationParams& params) {
  std::vector<PromptInput> inputs;
  std::vector<ChatMessage> messages;
  if (endpoint == Endpoint::Completions) {
    auto parsed = parse_completion_body(body);
    if (!parsed) return parsed.error();
    params = std::move(parsed.value().params);
    inputs = std::move(parsed.value().prompts);
  } else {
    auto parsed = parse_chat_body(body);
    if (!parsed) return parsed.error();
    params = std::move(parsed.value().params);
    messages = std::move(parsed.value().messages);
  }
  if (!params.model.empty() && params.model != options_.model_name)
    return ApiError{404, "the model '" + params.model + "' does not exist; this server serves '" + options_.model_name + "'",
                    "invalid_request_error", "model", "model_not_found"};

  std::vector<std::vector<int32_t>> prompts;
  if (endpoint == Endpoint::Completions) {
    for (PromptInput& input : inputs) {
      if (auto* text = std::get_if<std::string>(&input))
        prompts.push_back(tokenizer_.encode(*text, AddSpecial::Yes));
      else
        prompts.push_back(std::move(std::get<std::vector<int32_t>>(input)));
    }
  } else {
    auto ids = render_chat(messages);
    if (!ids) return ids.error();
    prompts.push_back(std::move(ids.value()));
  }

  std::vector<CompletionRequest> requests;
  for (std::vector<int32_t>& prompt : prompts) {
    auto request = make_completion_request(params, endpoint, std::move(prompt), context_, vocab_size_);
    if (!request) return request.error();
    // n choices of one prompt differ by seed (the same seed would give n identical samples).
    for (int64_t j = 0; j < params.n; ++j) {
      requests.push_back(request.value());
      requests.back().sampling.seed = params.sampling.seed + uint64_t(j);
    }
  }
  return requests;
}

void OpenAiServer::handle_generation(Endpoint endpoint, const httplib::Request& req, httplib::Response& res) {
  const std::string label = endpoint_label(endpoint);
  if (!accepting_) return reply_error(label, res, ApiError{503, "the server is shutting down", "server_error", "", "shutting_down"});
  GenerationParams params;
  auto requests = build_requests(endpoint, req.body, params);
  if (!requests) return reply_error(label, res, requests.error());

  auto in_flight = std::make_shared<InFlight>(in_flight_);
  auto started_session = GenerationSession::start(scheduler_, std::move(requests.value()), metrics_);
  if (!started_session) return reply_error(label, res, started_session.error());
  std::shared_ptr<GenerationSession> session = std::move(started_session.value());
  // A client that hangs up while its request waits or runs frees its sequence at once.
  std::weak_ptr<GenerationSession> weak = session;
  ConnectionWatch::Guard guard = watch_.watch(find_connection_socket(req.local_port, req.remote_addr, req.remote_port),
                                              [weak] {
                                                if (auto s = weak.lock()) s->cancel();
                                              });
  if (params.stream) {
    // The stream's state holds the session, the hang-up guard and the in-flight count until the
    // last byte is written.
    return stream_response(endpoint, params, std::move(session), std::move(guard), res);
  }

  ResponseBuilder builder(endpoint, options_.model_name, tokenizer_, params.top_logprobs >= 0);
  std::vector<ChoiceState> choices(session->choices());
  GenerationSession::Event event;
  while (session->next(event)) ResponseBuilder::append(choices[size_t(event.index)], event.event);
  if (session->cancelled()) {
    metrics_.count_request(label, kClientClosed);
    res.status = kClientClosed;
    return;
  }
  for (const ChoiceState& c : choices)
    if (!c.error.empty())
      return reply_error(label, res, ApiError{500, "generation failed: " + c.error, "server_error", "", ""});
  set_json(res, 200, dump_json(builder.full_response(choices, usage_of(choices, params.n))));
  metrics_.count_request(label, 200);
}

void OpenAiServer::stream_response(Endpoint endpoint, const GenerationParams& params,
                                   std::shared_ptr<GenerationSession> session, ConnectionWatch::Guard guard,
                                   httplib::Response& res) {
  struct StreamState {
    std::shared_ptr<GenerationSession> session;
    ResponseBuilder builder;
    GenerationParams params;
    ConnectionWatch::Guard guard;
    std::shared_ptr<InFlight> in_flight;
    std::vector<ChoiceState> choices;
  };
  auto state = std::make_shared<StreamState>(StreamState{
      session, ResponseBuilder(endpoint, options_.model_name, tokenizer_, params.top_logprobs >= 0), params,
      std::move(guard), std::make_shared<InFlight>(in_flight_), std::vector<ChoiceState>(session->choices())});
  const std::string label = endpoint_label(endpoint);
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // proxies: do not buffer the stream
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, state, endpoint, label](size_t, httplib::DataSink& sink) {
        auto send = [&](const Json& json) {
          const std::string frame = sse_event(dump_json(json));
          return sink.write(frame.data(), frame.size());
        };
        auto abandon = [&] {
          state->session->cancel();
          metrics_.count_request(label, kClientClosed);
          return false;
        };
        if (endpoint == Endpoint::ChatCompletions)
          for (size_t i = 0; i < state->choices.size(); ++i)
            if (!send(state->builder.role_chunk(int64_t(i)))) return abandon();
        const bool with_logprobs = state->params.top_logprobs >= 0;
        bool failed = false;
        GenerationSession::Event event;
        while (state->session->next(event)) {
          ChoiceState& choice = state->choices[size_t(event.index)];
          const StreamEvent& e = event.event;
          if (!e.error.empty()) {
            failed = true;
            ResponseBuilder::append(choice, e);
            if (!send(error_json(ApiError{500, "generation failed: " + e.error, "server_error", "", ""}))) return abandon();
            continue;
          }
          // Events that only advance held-back text carry nothing a client could see.
          const bool visible = !e.text.empty() || e.finished || (with_logprobs && !e.ids.empty());
          Json chunk = state->builder.event_chunk(event.index, e, choice);
          ResponseBuilder::append(choice, e);
          if (!visible) continue;
          if (state->params.include_usage) chunk["usage"] = nullptr;
          if (!send(chunk)) return abandon();
        }
        if (state->session->cancelled()) return abandon();
        if (state->params.include_usage && !send(state->builder.usage_chunk(usage_of(state->choices, state->params.n))))
          return abandon();
        const std::string done = sse_done();
        if (!sink.write(done.data(), done.size())) return abandon();
        sink.done();
        metrics_.count_request(label, failed ? 500 : 200);
        return true;
      },
      [state](bool success) {
        if (!success) state->session->cancel();
      });
}

}  // namespace brisk::serve
