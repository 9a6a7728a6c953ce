// brisk chat: a conversation in the terminal with the model's chat template. Each line read is
// a user turn (a line ending in '\' continues on the next); the reply streams to stdout. The
// engine keeps the conversation's keys and values, so a turn only runs its new tokens.
// Commands: /exit (or end of input), /reset (forget the turns, keep --system). Ctrl-C stops a
// reply and keeps the conversation; at the prompt it quits. Scriptable: pipe the turns in.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <iostream>
#include <memory>

#include "common.h"
#include "serve/chat_session.h"

namespace brisk::cli {

namespace {

std::atomic<bool> g_replying{false};
std::atomic<bool> g_cancel{false};

void on_interrupt(int) {
  if (g_replying.load()) {
    g_cancel.store(true);
    return;
  }
  const char newline = '\n';
  (void)!write(STDERR_FILENO, &newline, 1);
  _exit(130);
}

// One user turn from stdin: lines joined while they end in a backslash. False at end of input.
bool read_turn(std::string& turn, bool interactive) {
  turn.clear();
  std::string line;
  if (interactive) std::fprintf(stderr, "> ");
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && line.back() == '\\') {
      turn += line.substr(0, line.size() - 1) + "\n";
      if (interactive) std::fprintf(stderr, ". ");
      continue;
    }
    turn += line;
    return true;
  }
  return !turn.empty();
}

}  // namespace

Command add_chat(CLI::App& app) {
  struct Flags {
    EngineOptions engine;
    std::string model, system, template_file;
    SamplingParams sampling;
    int64_t seed = -1;
    int64_t max_new_tokens = 512;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand("chat", "Talk with a model in the terminal (multi-turn, its chat template)");
  add_model_option(sub, f->model, "Model folder (Hugging Face layout) with a chat template");
  sub->add_option("--system", f->system, "System message at the start of the conversation");
  sub->add_option("--chat-template", f->template_file, "Jinja chat template file instead of the model's");
  sub->add_option("-n,--n-predict", f->max_new_tokens, "Most new tokens per reply")->capture_default_str()->check(positive());
  add_sampling_flags(sub, f->sampling, f->seed);
  add_engine_flags(sub, f->engine.backend);
  add_parallel_flags(sub, f->engine);
  add_kv_dtype_flag(sub, f->engine.kv_dtype);
  sub->add_option("-c,--ctx", f->engine.context, "Context length; 0 = min(model maximum, 4096)")->capture_default_str()->check(non_negative());
  sub->footer("Type a message and Enter; end a line with '\\' to continue it. /reset forgets the conversation,\n"
              "/exit or end of input quits. Ctrl-C stops a reply. Sampling flags not given take the model's\n"
              "generation_config.json values.");

  return {sub, [f, sub]() {
    f->engine.model_dir = f->model;
    show_load_progress(f->engine);
    auto engine = open_engine(f->engine);
    if (!engine) return fail(engine.error());
    if (!engine.value()) return 0;  // a follower rank
    auto chat_template = f->template_file.empty() ? ChatTemplate::from_tokenizer_config(f->model)
                                                  : ChatTemplate::from_file(f->template_file, f->model);
    if (!chat_template) return fail(chat_template.error());
    ChatSession session(*engine.value(), std::move(chat_template).value(),
                        f->system.empty() ? std::nullopt : std::optional<std::string>(f->system));
    ChatReplyOptions options;
    options.sampling = f->sampling;
    options.sampling.seed = resolve_seed(f->seed);
    options.max_new_tokens = f->max_new_tokens;
    options.cancel = &g_cancel;
    const bool interactive = isatty(STDIN_FILENO);
    const std::string sampling = apply_generation_defaults(*sub, engine.value()->generation_config(), options.sampling);
    std::fprintf(stderr, "[%s; context %lld tokens]\n", sampling.c_str(), (long long)engine.value()->context());
    if (interactive) std::fprintf(stderr, "[/reset forgets the conversation, /exit quits, Ctrl-C stops a reply]\n");
    std::signal(SIGINT, on_interrupt);

    std::string turn;
    while (read_turn(turn, interactive)) {
      if (turn == "/exit" || turn == "/quit") break;
      if (turn == "/reset") {
        session.reset();
        std::fprintf(stderr, "[conversation reset]\n");
        continue;
      }
      if (turn.empty()) continue;
      g_cancel.store(false);
      g_replying.store(true);
      auto reply = session.reply(turn, options, [](const std::string& piece) { std::cout << piece << std::flush; });
      g_replying.store(false);
      std::cout << std::endl;
      if (!reply) {
        std::fprintf(stderr, "brisk: error: %s\n", reply.error().message.c_str());
        if (!interactive) return 1;
        continue;
      }
      if (reply->reason == StopReason::Cancelled) std::fprintf(stderr, "[reply stopped]\n");
      if (reply->reason == StopReason::Context)
        std::fprintf(stderr, "[the context is full: /reset to start over]\n");
      if (interactive)
        std::fprintf(stderr, "[%lld new tokens; %lld of %lld prompt tokens reused]\n", (long long)reply->ids.size(),
                     (long long)reply->reused_tokens, (long long)reply->prompt_tokens);
    }
    return 0;
  }};
}

}  // namespace brisk::cli
