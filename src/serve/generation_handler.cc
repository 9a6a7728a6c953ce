// POST /v1/completions and /v1/chat/completions: body -> scheduler requests -> one JSON response
// or an SSE stream. Part of OpenAiServer (openai_server.h).
#include <algorithm>
#include <cmath>

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

ToolCallFormat OpenAiServer::tool_call_format(const ChatRenderOptions& options) const {
  if (options_.tool_call_format) return *options_.tool_call_format;
  if (options.chat_template) return detect_tool_call_format(*options.chat_template);
  return detect_tool_call_format(chat_template_ ? chat_template_->source() : std::string());
}

ApiResult<std::vector<int32_t>> OpenAiServer::render_chat(const ChatMessages& messages, const ChatRenderOptions& options,
                                                          const nlohmann::ordered_json& tools) {
  std::optional<ChatTemplate> requested;
  if (options.chat_template) {
    auto parsed = ChatTemplate::from_source(*options.chat_template, model_dir_);
    if (!parsed) return invalid_field("chat_template", parsed.error().message);
    requested.emplace(std::move(parsed).value());
  } else if (!chat_template_) {
    return invalid_field("messages",
                         "this model has no chat template, so /v1/chat/completions cannot turn messages into a prompt "
                         "(use /v1/completions with a plain prompt, or send a chat_template): " + chat_template_error_);
  }
  const ChatTemplate& chat_template = requested ? *requested : *chat_template_;
  ChatTemplateInputs inputs;
  inputs.tools = tools;
  for (const auto& [key, value] : options.chat_template_kwargs.items()) inputs.variables[key] = value;
  Result<std::string> text = chat_template.apply_json(
      messages, options.add_generation_prompt ? GenerationPrompt::kAppend : GenerationPrompt::kOmit, inputs);
  if (!text)
    return invalid_field(requested ? "chat_template" : "messages",
                         "the chat template failed on these messages: " + text.error().message);
  // The template writes the special tokens (BOS included) itself, as transformers does.
  return tokenizer_.encode(text.value(), AddSpecial::No);
}

ApiResult<GenerationPlan> OpenAiServer::build_requests(Endpoint endpoint, const std::string& body,
                                                       GenerationParams& params) {
  std::vector<PromptInput> inputs;
  ChatMessages messages;
  ChatRenderOptions render;
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
    render = std::move(parsed.value().render);
  }
  if (auto unknown = check_model(params.model)) return *unknown;

  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::string> texts;
  if (endpoint == Endpoint::Completions) {
    for (PromptInput& input : inputs) {
      if (auto* text = std::get_if<std::string>(&input)) {
        prompts.push_back(tokenizer_.encode(*text, AddSpecial::Yes));
        texts.push_back(*text);
      } else {
        prompts.push_back(std::move(std::get<std::vector<int32_t>>(input)));
        texts.push_back(params.echo ? tokenizer_.decode(prompts.back()) : std::string());
      }
    }
  } else {
    params.tools.format = tool_call_format(render);
    if (params.tools.forced()) {
      auto forced = forced_tool_call_grammar(params.tools);
      if (!forced) return forced.error();
      params.grammar = std::move(forced).value();
    }
    auto ids = render_chat(messages, render, params.tools.tools);
    if (!ids) return ids.error();
    prompts.push_back(std::move(ids.value()));
    texts.emplace_back();
  }
  if (!params.grammar.empty()) {  // bound to the vocabulary once per distinct grammar (GrammarCache)
    auto bound = scheduler_.engine().grammars().get(params.grammar);
    if (!bound) return invalid_field("grammar", bound.error().message);
    params.sampling.grammar = std::move(bound).value();
  }

  GenerationPlan plan;
  for (size_t p = 0; p < prompts.size(); ++p) {
    auto request = make_completion_request(params, endpoint, std::move(prompts[p]), context_, vocab_size_);
    if (!request) return request.error();
    // n choices of one prompt differ by seed (the same seed would give n identical samples).
    for (int64_t j = 0; j < params.candidates(); ++j) {
      plan.requests.push_back(request.value());
      plan.requests.back().sampling.seed = params.sampling.seed + uint64_t(j);
      // best_of ranks candidates by their mean token logprob, so every candidate reports them.
      if (params.candidates() > params.n)
        plan.requests.back().top_logprobs = std::max(plan.requests.back().top_logprobs, 0);
      plan.prompt_texts.push_back(texts[p]);
    }
  }
  return plan;
}

// One generation request's answer, written as its events arrive: every drain runs on the
// connection's strand (posted by the scheduler's listener), so a waiting request holds no thread.
struct GenerationReply : std::enable_shared_from_this<GenerationReply> {
  GenerationReply(OpenAiServer& server, Endpoint endpoint, GenerationParams params, std::vector<ChoiceState> choices,
                  std::shared_ptr<GenerationSession> session, std::shared_ptr<HttpExchange> exchange)
      : server(server),
        endpoint(endpoint),
        label(endpoint_label(endpoint)),
        params(std::move(params)),
        session(std::move(session)),
        exchange(std::move(exchange)),
        builder(endpoint, server.model_name(), server.tokenizer_, this->params),
        choices(std::move(choices)),
        in_flight(std::in_place, server.in_flight_) {}

  void start() {
    std::weak_ptr<GenerationSession> weak = session;
    // A client that hangs up while its request waits or runs frees its sequences at once.
    exchange->on_abandon([weak] {
      if (auto s = weak.lock()) s->cancel();
    });
    if (params.stream) {
      // ": keep-alive" is an SSE comment: clients skip it; it probes a half-closed connection.
      exchange->begin_stream(200, "text/event-stream", {{"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"}},
                             ": keep-alive\n\n");
      if (endpoint == Endpoint::ChatCompletions)
        for (size_t i = 0; i < choices.size(); ++i) send(builder.role_chunk(int64_t(i)));
    }
    session->set_listener([self = shared_from_this()] { self->schedule_drain(); });
  }

  void schedule_drain() {
    if (drain_pending.exchange(true)) return;
    exchange->post([self = shared_from_this()] {
      self->drain_pending = false;
      self->drain();
    });
  }

  void send(const Json& json) { exchange->send(sse_event(dump_json(json))); }

  void drain() {
    if (completed) return;
    const bool with_logprobs = params.top_logprobs >= 0;
    GenerationSession::Event event;
    while (session->poll(event)) {
      ChoiceState& choice = choices[size_t(event.index)];
      const StreamEvent& e = event.event;
      if (!e.error.empty()) failed = true;
      if (params.echo && params.stream && !choice.echoed && !session->cancelled()) {
        // The prompt goes out first, with the scores its first event carries.
        ChoiceState prompt = choice;
        prompt.prompt_logprobs = e.prompt_logprobs;
        prompt.prompt_top_logprobs = e.prompt_top_logprobs;
        send(builder.echo_chunk(event.index, prompt));
        choice.echoed = true;
      }
      if (!params.stream || session->cancelled()) {
        ResponseBuilder::append(choice, e);
        continue;
      }
      if (!e.error.empty()) {
        ResponseBuilder::append(choice, e);
        send(error_json(ApiError{500, "generation failed: " + e.error, "server_error", "", ""}));
        continue;
      }
      if (choice.tool_parser) {
        send_with_tool_calls(event.index, e, choice);
        continue;
      }
      // Events that only advance held-back text carry nothing a client could see.
      const bool visible = !e.text.empty() || e.finished || (with_logprobs && !e.ids.empty());
      Json chunk = builder.event_chunk(event.index, e, choice);
      ResponseBuilder::append(choice, e);
      if (!visible) continue;
      if (params.include_usage) chunk["usage"] = nullptr;
      send(chunk);
    }
    if (session->done()) complete();
  }

  // Chat with tools: the event's text split into content (sent as usual) and calls (their own
  // chunks, before the one that finishes the choice).
  void send_with_tool_calls(int64_t index, const StreamEvent& e, ChoiceState& choice) {
    ToolCallParser::Delta split =
        choice.tool_parser->feed(e.text, e.finished ? ToolCallParser::Piece::Last : ToolCallParser::Piece::More);
    StreamEvent shown = e;
    shown.text = std::move(split.content);
    choice.tool_calls = choice.tool_parser->calls_so_far();
    auto emit = [&](Json chunk) {
      if (params.include_usage) chunk["usage"] = nullptr;
      send(chunk);
    };
    const bool visible = !shown.text.empty() || (params.top_logprobs >= 0 && !e.ids.empty());
    if (visible && !e.finished) emit(builder.event_chunk(index, shown, choice));
    for (Json& chunk : builder.tool_call_chunks(index, split.calls)) emit(std::move(chunk));
    if (e.finished) emit(builder.event_chunk(index, shown, choice));
    ResponseBuilder::append(choice, e);
  }

  void complete() {
    completed = true;
    const Usage usage = usage_of(choices, params.candidates());
    exchange->note_tokens(usage.prompt_tokens, usage.completion_tokens, session->time_to_first_token());
    int64_t speculated = 0, accepted = 0;
    for (const ChoiceState& choice : choices) {
      speculated += choice.speculated_tokens;
      accepted += choice.accepted_tokens;
    }
    exchange->note_speculation(speculated, accepted);
    if (session->cancelled()) {
      server.metrics_.count_request(label, kClientClosed);
    } else if (params.stream) {
      if (params.include_usage) send(builder.usage_chunk(usage));
      exchange->send(sse_done());
      exchange->end_stream();
      server.metrics_.count_request(label, failed ? 500 : 200);
    } else if (failed) {
      for (const ChoiceState& c : choices)
        if (!c.error.empty()) {
          server.reply_error(label, *exchange, ApiError{500, "generation failed: " + c.error, "server_error", "", ""});
          break;
        }
    } else {
      exchange->respond(json_response(200, dump_json(builder.full_response(best_candidates(), usage))));
      server.metrics_.count_request(label, 200);
    }
    // The session's listener holds this reply: let go of the session and the connection.
    session.reset();
    exchange.reset();
    in_flight.reset();
  }

  // best_of: per prompt, the n candidates with the highest mean token logprob (OpenAI's "best"),
  // in their original order; otherwise every choice.
  std::vector<ChoiceState> best_candidates() const {
    const int64_t group = params.candidates();
    if (group == params.n) return choices;
    auto mean_logprob = [](const ChoiceState& c) {
      double sum = 0;
      for (float lp : c.logprobs) sum += lp;
      return c.logprobs.empty() ? -INFINITY : sum / double(c.logprobs.size());
    };
    std::vector<ChoiceState> best;
    for (size_t first = 0; first < choices.size(); first += size_t(group)) {
      std::vector<size_t> order(static_cast<size_t>(group));
      for (size_t i = 0; i < order.size(); ++i) order[i] = first + i;
      std::stable_sort(order.begin(), order.end(),
                       [&](size_t a, size_t b) { return mean_logprob(choices[a]) > mean_logprob(choices[b]); });
      order.resize(size_t(params.n));
      std::sort(order.begin(), order.end());
      for (size_t i : order) best.push_back(choices[i]);
    }
    return best;
  }

  OpenAiServer& server;
  Endpoint endpoint;
  std::string label;
  GenerationParams params;
  std::shared_ptr<GenerationSession> session;
  std::shared_ptr<HttpExchange> exchange;
  ResponseBuilder builder;
  std::vector<ChoiceState> choices;
  std::optional<InFlight> in_flight;  // counted until the last byte is queued
  std::atomic<bool> drain_pending{false};
  bool failed = false;
  bool completed = false;
};

void OpenAiServer::handle_generation(Endpoint endpoint, const HttpRequest& req, const Exchange& exchange) {
  const std::string label = endpoint_label(endpoint);
  if (!accepting_) return reply_error(label, *exchange, ApiError{503, "the server is shutting down", "server_error", "", "shutting_down"});
  GenerationParams params;
  auto plan = build_requests(endpoint, req.body, params);
  if (!plan) return reply_error(label, *exchange, plan.error());
  std::vector<ChoiceState> choices(plan->requests.size());
  if (endpoint == Endpoint::ChatCompletions && params.tools.active())
    for (ChoiceState& choice : choices) choice.tool_parser.emplace(params.tools);
  if (params.echo)
    for (size_t i = 0; i < choices.size(); ++i) {
      choices[i].prompt_text = plan->prompt_texts[i];
      choices[i].prompt_ids = plan->requests[i].prompt;
    }
  auto started_session = GenerationSession::start(scheduler_, std::move(plan->requests), metrics_);
  if (!started_session) return reply_error(label, *exchange, started_session.error());
  auto reply = std::make_shared<GenerationReply>(*this, endpoint, std::move(params), std::move(choices),
                                                 std::move(started_session.value()), exchange);
  reply->start();
}

}  // namespace brisk::serve
