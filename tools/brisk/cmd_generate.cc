// brisk generate: stream a continuation of a prompt.
#include <iostream>
#include <memory>
#include <random>

#include "common.h"
#include "runtime/engine.h"

namespace brisk::cli {

Command add_generate(CLI::App& app) {
  struct Flags {
    EngineOptions engine;
    GenerateRequest request;
    std::string model;
    bool json = false;
    bool ignore_eos = false;
    int64_t seed = -1;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand("generate", "Continue a prompt, streaming the new text to stdout");
  sub->add_option("-m,--model", f->model, "Model folder (Hugging Face layout) or .gguf file")->required();
  sub->add_option("-p,--prompt", f->request.prompt, "Prompt text")->required();
  sub->add_option("-n,--n-predict", f->request.max_new_tokens, "New tokens to generate")->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--temp", f->request.sampling.temperature, "Sampling temperature; 0 = greedy")->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--top-k", f->request.sampling.top_k, "Keep the k most likely tokens; 0 = off")->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--top-p", f->request.sampling.top_p, "Nucleus sampling mass; 1 = off")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  sub->add_option("--min-p", f->request.sampling.min_p, "Drop tokens below min-p x p(best); 0 = off")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  sub->add_option("--repeat-penalty", f->request.sampling.repetition_penalty, "Repetition penalty over prompt and output; 1 = off")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--presence-penalty", f->request.sampling.presence_penalty, "Subtract from tokens already generated")->capture_default_str();
  sub->add_option("--frequency-penalty", f->request.sampling.frequency_penalty, "Subtract per occurrence in the output")->capture_default_str();
  sub->add_option("--seed", f->seed, "Random seed; -1 = pick one (printed with --json)")->capture_default_str();
  sub->add_option("--stop", f->request.stop, "Stop before this string (repeatable)");
  sub->add_flag("--ignore-eos", f->ignore_eos, "Keep generating past the end-of-sequence token");
  add_engine_flags(sub, f->engine.backend);
  add_kv_dtype_flag(sub, f->engine.kv_dtype);
  sub->add_option("--ctx", f->engine.context, "Context length; 0 = min(model maximum, 4096)")->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_flag("--json", f->json, "Print one JSON object instead of streaming text");

  return {sub, [f]() {
    f->engine.model_dir = f->model;
    f->request.stop_at_eos = !f->ignore_eos;
    f->request.sampling.seed = f->seed >= 0 ? uint64_t(f->seed) : std::random_device{}();
    auto engine = Engine::open(f->engine);
    if (!engine) return fail(engine.error());
    auto on_text = [&](const std::string& piece) {
      if (f->json) return;
      std::cout << piece << std::flush;
    };
    auto result = engine.value()->generate(f->request, on_text);
    if (!result) return fail(result.error());
    const GenerateResult& r = result.value();
    const double new_tokens = double(r.ids.size());
    if (f->json) {
      print_json({{"text", r.text},
                  {"ids", r.ids},
                  {"prompt_tokens", r.prompt_tokens},
                  {"new_tokens", r.ids.size()},
                  {"prefill_tok_s", r.prefill_seconds > 0 ? double(r.prompt_tokens) / r.prefill_seconds : 0.0},
                  {"decode_tok_s", r.decode_seconds > 0 ? new_tokens / r.decode_seconds : 0.0},
                  {"stop_reason", stop_reason_name(r.reason)},
                  {"seed", f->request.sampling.seed}});
    } else {
      std::cout << std::endl;
      std::fprintf(stderr, "[%lld prompt tokens, %.1f tok/s prefill; %lld new tokens, %.1f tok/s decode; stop: %s]\n",
                   (long long)r.prompt_tokens, r.prefill_seconds > 0 ? double(r.prompt_tokens) / r.prefill_seconds : 0.0,
                   (long long)r.ids.size(), r.decode_seconds > 0 ? new_tokens / r.decode_seconds : 0.0,
                   stop_reason_name(r.reason));
    }
    return 0;
  }};
}

}  // namespace brisk::cli
