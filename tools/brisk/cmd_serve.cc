// brisk serve: an OpenAI-compatible HTTP server (completions, chat, models, health, metrics) over
// the continuous-batching scheduler.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <pthread.h>
#include <thread>
#include <vector>

#include "common.h"
#include "speculation_flags.h"
#include "runtime/replica_router.h"
#include "runtime/scheduler.h"
#include "serve/auth.h"
#include "serve/openai_server.h"
#include "serve/server_log.h"

namespace brisk::cli {

namespace {

// --dp N: the engine options of replica i. On the CPU each takes its share of the threads (all
// cores by default); with --device cuda replica i runs on cuda:i.
Result<EngineOptions> replica_options(EngineOptions options, int64_t replicas, int64_t i) {
  if (replicas == 1) return options;
  if (options.tensor_parallel > 1 || options.pipeline_parallel > 1)
    return make_error("--dp with --tp or --pp is not supported yet: replicas of a split model need one MPI job each");
  BackendOptions& b = options.backend;
  if (b.device == "cpu") {
    const int64_t cores = b.threads > 0 ? b.threads : int64_t(std::max(1u, std::thread::hardware_concurrency()));
    if (cores < replicas)
      return make_error("--dp " + std::to_string(replicas) + " needs at least one CPU thread per replica; -t gives " +
                        std::to_string(cores));
    b.threads = int(cores / replicas);
  } else if (b.device == "cuda") {
    b.device = "cuda:" + std::to_string(i);
  } else {
    return make_error("--dp " + std::to_string(replicas) + " places replica i on cuda:i: give --device cuda, not '" +
                      b.device + "'");
  }
  return options;
}

// What was started, on which limits: the first lines of the server's log.
void log_startup(Engine& engine, int64_t replicas, const SchedulerOptions& scheduler, const serve::ServerOptions& server,
                 int max_connections, int port) {
  const ModelConfig& config = engine.model().config();
  spdlog::logger& log = serve::server_log();
  std::string names;
  for (const std::string& name : server.model_names) names += (names.empty() ? "'" : ", '") + name + "'";
  log.info("model {} ({}, {} layers, hidden {}, vocab {}), context {} tokens per sequence", names,
           config.model_type, config.n_layers, config.hidden_size, config.vocab_size, engine.context());
  if (replicas > 1) log.info("{} replicas, each request routed to the least busy (prefix affinity)", replicas);
  log.info("batch up to {} sequences, queue up to {} requests{}; connections up to {}, bodies up to {} bytes; API key {}",
           scheduler.max_batch, scheduler.max_queue, replicas > 1 ? " per replica" : "", max_connections, server.http.max_body_bytes,
           server.api_key.empty() ? "off" : "required on /v1");
  log.info("listening on http://{}:{}", server.http.host, port);
}

}  // namespace

Command add_serve(CLI::App& app) {
  struct Flags {
    EngineOptions engine;
    SchedulerOptions scheduler;
    serve::ServerOptions server;
    std::string model;
    double shutdown_grace_s = 30;
    double idle_timeout_s = 60;
    double head_timeout_s = 10;
    std::string api_key;
    std::string api_key_file;
    int64_t replicas = 1;
    SpeculationFlags speculation;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API");
  add_model_option(sub, f->model, "Model folder (Hugging Face layout)");
  sub->add_option("--host", f->server.http.host, "Address to listen on")->capture_default_str();
  sub->add_option("--port", f->server.http.port, "Port; 0 = any free port (printed)")->capture_default_str()->check(in_range(0, 65535));
  add_engine_flags(sub, f->engine);
  add_parallel_flags(sub, f->engine);
  sub->add_option("--dp", f->replicas,
                  "Data parallel: N replicas of the model behind this one endpoint, each request routed to the\n"
                  "replica with the fewest in flight (a prompt sharing its first 64 tokens with an earlier one\n"
                  "stays with it while that replica is not much busier). CPU: the threads are divided among\n"
                  "them; --device cuda: replica i on cuda:i")
      ->check(CLI::Range(int64_t(1), int64_t(64)))
      ->capture_default_str();
  sub->add_option("--ctx", f->engine.context, "Context length per sequence; 0 = min(model maximum, 4096)")->capture_default_str()->check(non_negative());
  sub->add_option("--max-batch", f->scheduler.max_batch, "Sequences decoded together; 1 = one request at a time")->capture_default_str()->check(in_range(1, kMaxBatchSequences));
  // At least 1: every request passes through the queue to the next scheduling step, so 0 would
  // answer 429 to all of them.
  sub->add_option("--served-model-name", f->server.model_names,
                  "Names requests may give as 'model' (aliases; the first names responses). Default: the model folder's name")
      ->check([](const std::string& name) { return name.empty() ? std::string("a served model name cannot be empty") : std::string(); });
  sub->add_option("--chat-template", f->server.chat_template_file,
                  "Jinja chat template file for /v1/chat/completions instead of the model's own");
  sub->add_option_function<std::string>(
         "--tool-call-parser",
         [f](const std::string& name) { f->server.tool_call_format = serve::tool_call_format_named(name); },
         "How the model writes tool calls: hermes (<tool_call> JSON, Qwen), llama3_json (Llama 3.1+), mistral "
         "([TOOL_CALLS]). Default: detected from the chat template")
      ->check(CLI::IsMember({"hermes", "llama3_json", "mistral"}));
  add_speculation_flags(sub, f->speculation);
  sub->add_option("--spec-max-batch", f->scheduler.speculation_max_batch,
                  "Speculate only while at most this many sequences decode (larger batches are no longer bound by\n"
                  "reading the weights, and checked tokens cost what they save)")
      ->capture_default_str()->check(positive());
  sub->add_option("--max-queue", f->scheduler.max_queue, "Waiting requests before answering 429 (at least 1)")->capture_default_str()->check(positive());
  CLI::Option* key_flag = sub->add_option(
      "--api-key", f->api_key,
      "Require 'Authorization: Bearer KEY' on /v1 endpoints. Visible in `ps`: prefer --api-key-file or the "
      "BRISK_API_KEY environment variable. Empty keys and keys with whitespace are refused");
  CLI::Option* key_file = sub->add_option(
      "--api-key-file", f->api_key_file,
      "Read the API key from FILE (one trailing newline is ignored); else BRISK_API_KEY is used when set");
  sub->add_option("--max-connections", f->server.http.max_connections,
                  "Open connections at once (idle ones cost no thread); more are answered 503. Capped by the "
                  "descriptor limit")->capture_default_str()->check(positive());
  sub->add_option("--max-body", f->server.http.max_body_bytes, "Largest request body in bytes, after inflating gzip")
      ->capture_default_str()->check(positive());
  sub->add_option("--idle-timeout", f->idle_timeout_s, "Seconds a keep-alive connection may wait for its next request")
      ->capture_default_str()->check(in_range(0.01, 86400));
  sub->add_option("--head-timeout", f->head_timeout_s,
                  "Seconds from a request's first byte to the end of its headers (slow clients are closed)")
      ->capture_default_str()->check(in_range(0.01, 3600));
  sub->add_option("--shutdown-grace", f->shutdown_grace_s, "Seconds SIGTERM waits for in-flight requests before cancelling them")->capture_default_str()->check(non_negative());

  return {sub, [f, sub, key_flag, key_file]() {
    serve::ApiKeySources key_sources;
    if (key_flag->count() > 0) key_sources.flag = f->api_key;
    if (key_file->count() > 0) key_sources.file = f->api_key_file;
    if (const char* env = std::getenv(serve::kApiKeyEnvironment)) key_sources.environment = env;
    auto api_key = serve::resolve_api_key(key_sources);
    if (!api_key) return fail(api_key.error());
    f->server.api_key = std::move(api_key).value();
    if (Status spec = check_speculation_flags(*sub, f->speculation); !spec.ok()) return fail(spec.error());
    f->scheduler.lookup = f->speculation.lookup;
    f->scheduler.max_draft = f->speculation.max_draft;
    f->server.http.idle_timeout = std::chrono::milliseconds(int64_t(f->idle_timeout_s * 1000));
    f->server.http.head_timeout = std::chrono::milliseconds(int64_t(f->head_timeout_s * 1000));

    // SIGTERM/SIGINT go to one waiting thread, not to whichever thread the kernel picks; blocked
    // before any thread (the engine's pool, the HTTP pool) starts so all inherit the mask.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not kill the server

    // Without --kv-mem: room for a full batch of 1024-token sequences (at least one context).
    f->engine.kv_tokens = f->scheduler.max_batch * 1024;
    f->engine.model_dir = f->model;
    show_load_progress(f->engine);
    std::vector<std::unique_ptr<Engine>> engines;
    std::vector<DraftSetup> drafts;  // --draft: each replica's own draft model, on its device and threads
    std::vector<DraftSource*> draft_sources;
    for (int64_t i = 0; i < f->replicas; ++i) {
      auto options = replica_options(f->engine, f->replicas, i);
      if (!options) return fail(options.error());
      auto engine = open_engine(options.value());
      if (!engine) return fail(engine.error());
      if (!engine.value()) return 0;  // a follower rank
      engines.push_back(std::move(engine).value());
      if (!f->speculation.draft.empty()) {
        auto draft = open_draft_source(f->speculation, *engines.back(), options.value());
        if (!draft) return fail(draft.error());
        draft_sources.push_back(draft->source.get());
        drafts.push_back(std::move(draft).value());
      }
    }
    std::unique_ptr<RequestScheduler> scheduler;
    if (f->replicas == 1) {
      f->scheduler.draft = draft_sources.empty() ? nullptr : draft_sources.front();
      scheduler = std::make_unique<Scheduler>(*engines.front(), f->scheduler);
    } else {
      std::vector<Engine*> replicas;
      for (auto& engine : engines) replicas.push_back(engine.get());
      scheduler = std::make_unique<ReplicaRouter>(replicas, f->scheduler, draft_sources);
    }
    if (f->server.model_names.empty()) {  // the folder's name
      std::string name = std::filesystem::path(f->model).lexically_normal().filename().string();
      if (name.empty()) name = std::filesystem::path(f->model).parent_path().filename().string();
      f->server.model_names.push_back(name);
    }
    if (!f->server.chat_template_file.empty()) {  // a broken override fails now, not on every request
      auto chat_template = ChatTemplate::from_file(f->server.chat_template_file, f->model);
      if (!chat_template) return fail(chat_template.error());
    }
    serve::OpenAiServer server(*scheduler, f->model, f->server);
    auto port = server.bind();
    if (!port) return fail(port.error());

    // The first SIGTERM/SIGINT starts a graceful shutdown (its own thread: it waits out the grace
    // period); a second one exits at once, as people expect of a second Ctrl-C.
    std::atomic<bool> finished{false};
    std::thread shutdown_thread;
    std::thread signal_waiter([&] {
      int received = 0;
      sigwait(&signals, &received);
      if (finished.load()) return;  // woken by run() returning on its own
      std::fprintf(stderr, "brisk serve: %s received, shutting down (again to exit at once)\n",
                   received == SIGINT ? "SIGINT" : "SIGTERM");
      shutdown_thread = std::thread([&] { server.shutdown(std::chrono::milliseconds(int64_t(f->shutdown_grace_s * 1000))); });
      sigwait(&signals, &received);
      if (finished.load()) return;
      std::fprintf(stderr, "brisk serve: second %s, exiting now\n", received == SIGINT ? "SIGINT" : "SIGTERM");
      std::_Exit(130);
    });
    log_startup(*engines.front(), f->replicas, f->scheduler, f->server, server.max_connections(), port.value());
    server.run();
    finished.store(true);
    pthread_kill(signal_waiter.native_handle(), SIGTERM);  // wakes its sigwait, wherever it is
    signal_waiter.join();
    if (shutdown_thread.joinable()) shutdown_thread.join();
    return 0;
  }};
}

}  // namespace brisk::cli
