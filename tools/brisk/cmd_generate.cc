// brisk generate: stream a continuation of a prompt.
#include <iostream>
#include <map>
#include <memory>
#include <random>

#include <unistd.h>

#include "common.h"
#include "speculation_flags.h"
#include "runtime/engine.h"

namespace brisk::cli {

Command add_generate(CLI::App& app) {
  struct Flags {
    EngineOptions engine;
    GenerateRequest request;
    std::string model;
    std::string prompt_file;
    GrammarFlags grammar;
    SpeculationFlags speculation;
    bool json = false;
    bool ignore_eos = false;
    bool no_echo = false;
    int64_t seed = -1;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand("generate", "Continue a prompt, streaming the new text to stdout");
  add_model_option(sub, f->model, "Model folder (Hugging Face layout) or .gguf file");
  CLI::Option* prompt = sub->add_option("-p,--prompt", f->request.prompt, "Prompt text");
  sub->add_option("-f,--file", f->prompt_file, "Read the prompt from a file ('-': standard input)")
      ->excludes(prompt);
  sub->add_option("-n,--n-predict", f->request.max_new_tokens, "New tokens to generate")->capture_default_str()->check(non_negative());
  add_sampling_flags(sub, f->request.sampling, f->seed);
  sub->add_option("--stop", f->request.stop, "Stop before this string (repeatable)");
  sub->add_flag("--ignore-eos", f->ignore_eos, "Keep generating past the end-of-sequence token");
  add_grammar_flags(sub, f->grammar);
  add_speculation_flags(sub, f->speculation);
  sub->add_option("--spec-off", f->request.speculation_off,
                  "when-slower: steps where speculating measures slower than plain decoding (seconds per\n"
                  "token, the draft's time included) switch it off for a while, then it is measured again;\n"
                  "never: speculate at every step (to measure speculation itself)")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, SpeculationOff>{{"when-slower", SpeculationOff::WhenSlower}, {"never", SpeculationOff::Never}}))
      ->default_str("when-slower");
  add_engine_flags(sub, f->engine.backend);
  add_parallel_flags(sub, f->engine);
  add_kv_dtype_flag(sub, f->engine.kv_dtype);
  sub->add_option("-c,--ctx", f->engine.context, "Context length; 0 = min(model maximum, 4096)")->capture_default_str()->check(non_negative());
  sub->add_flag("--json", f->json, "Print one JSON object instead of streaming text");
  sub->add_flag("--no-echo", f->no_echo, "Do not print the prompt before the continuation (printed on a terminal by default)");
  sub->footer("Sampling flags not given take the model's generation_config.json values when it has them,\n"
              "else the defaults above; the values used are printed on stderr.");

  return {sub, [f, sub]() {
    if (sub->count("--prompt") == 0 && sub->count("--file") == 0) return fail("give a prompt: -p TEXT or -f FILE ('-f -': stdin)");
    if (!f->prompt_file.empty()) {
      auto text = read_prompt_file(f->prompt_file);
      if (!text) return fail(text.error());
      f->request.prompt = std::move(text).value();
    }
    if (Status spec = check_speculation_flags(*sub, f->speculation); !spec.ok()) return fail(spec.error());
    f->engine.model_dir = f->model;
    f->request.stop_at_eos = !f->ignore_eos;
    f->request.sampling.seed = resolve_seed(f->seed);
    show_load_progress(f->engine);
    auto engine = open_engine(f->engine);
    if (!engine) return fail(engine.error());
    if (!engine.value()) return 0;  // a follower rank
    const std::string sampling = apply_generation_defaults(*sub, engine.value()->generation_config(), f->request.sampling);
    auto grammar = load_grammar(f->grammar, *engine.value());
    if (!grammar) return fail(grammar.error());
    f->request.sampling.grammar = std::move(grammar).value();
    if (f->request.sampling.grammar && f->ignore_eos)
      return fail("--ignore-eos cannot be combined with --grammar/--json-schema (the output ends where the grammar does)");
    auto draft = open_draft_source(f->speculation, *engine.value(), f->engine);
    if (!draft) return fail(draft.error());
    f->request.draft = draft.value().source.get();
    f->request.max_draft = f->speculation.max_draft;
    if (!f->json) std::fprintf(stderr, "[%s]\n", sampling.c_str());
    if (!f->json && !f->no_echo && isatty(STDOUT_FILENO)) std::cout << f->request.prompt << std::flush;
    auto on_text = [&](const std::string& piece) {
      if (f->json) return;
      std::cout << piece << std::flush;
    };
    auto result = engine.value()->generate(f->request, on_text);
    if (!result) return fail(result.error());
    const GenerateResult& r = result.value();
    const double new_tokens = double(r.ids.size());
    if (f->json) {
      Json out = {{"text", r.text},
                  {"ids", r.ids},
                  {"prompt_tokens", r.prompt_tokens},
                  {"new_tokens", r.ids.size()},
                  {"prefill_tok_s", r.prefill_seconds > 0 ? double(r.prompt_tokens) / r.prefill_seconds : 0.0},
                  {"decode_tok_s", r.decode_seconds > 0 ? new_tokens / r.decode_seconds : 0.0},
                  {"stop_reason", stop_reason_name(r.reason)},
                  {"seed", f->request.sampling.seed}};
      if (f->request.draft) out["speculation"] = speculation_json(r.speculation);
      print_json(out);
    } else {
      std::cout << std::endl;
      std::fprintf(stderr, "[%lld prompt tokens, %.1f tok/s prefill; %lld new tokens, %.1f tok/s decode; stop: %s]\n",
                   (long long)r.prompt_tokens, r.prefill_seconds > 0 ? double(r.prompt_tokens) / r.prefill_seconds : 0.0,
                   (long long)r.ids.size(), r.decode_seconds > 0 ? new_tokens / r.decode_seconds : 0.0,
                   stop_reason_name(r.reason));
      if (f->request.draft)
        std::fprintf(stderr, "[speculation: %.0f%% of %lld proposed tokens accepted, %.2f tokens per pass]\n",
                     100 * r.speculation.acceptance_rate(), (long long)r.speculation.proposed,
                     r.speculation.tokens_per_step());
    }
    return 0;
  }};
}

}  // namespace brisk::cli
