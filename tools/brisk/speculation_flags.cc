#include "speculation_flags.h"

namespace brisk::cli {

void add_speculation_flags(CLI::App* sub, SpeculationFlags& flags) {
  CLI::Option* draft = sub->add_option(
      "--draft", flags.draft,
      "Speculative decoding with a draft model: a smaller model with the same tokenizer proposes\n"
      "tokens that this model checks in one pass. The output is the same as without it, greedy\n"
      "or sampled (the seed gives the same text); only the speed changes");
  sub->add_option("--lookup", flags.lookup,
                  "Speculative decoding by prompt lookup: propose the tokens that followed the latest earlier\n"
                  "occurrence of the last N tokens (then N-1, ..., 1) in the prompt or output")
      ->check(CLI::Range(int64_t(1), int64_t(64)))
      ->excludes(draft);
  sub->add_option("--draft-max", flags.max_draft,
                  "Most tokens proposed per step (the length adapts to what the model accepts; at most 15:\n"
                  "a checking pass of up to 16 rows computes each row exactly as a decode step)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), kMaxDraft));
}

Status check_speculation_flags(const CLI::App& sub, const SpeculationFlags& flags) {
  if (flags.lookup > 0 || !flags.draft.empty()) return ok_status();
  for (const char* tuning : {"--draft-max", "--spec-max-batch", "--spec-off"})
    if (sub.get_option_no_throw(tuning) && sub.count(tuning) > 0)
      return make_error(std::string(tuning) + " tunes speculative decoding: give --draft DIR or --lookup N too");
  return ok_status();
}

Result<DraftSetup> open_draft_source(const SpeculationFlags& flags, Engine& target, EngineOptions target_options) {
  DraftSetup setup;
  if (flags.lookup > 0) {
    setup.source = std::make_unique<PromptLookup>(flags.lookup);
  } else if (!flags.draft.empty()) {
    if (target_options.tensor_parallel > 1 || target_options.pipeline_parallel > 1)
      return make_error("--draft with --tp/--pp is not supported yet");
    target_options.model_dir = flags.draft;
    target_options.on_load_progress = {};
    auto engine = Engine::open(target_options);
    if (!engine) return make_error("--draft " + flags.draft + ": " + engine.error().message);
    setup.draft_engine = std::move(engine).value();
    BRISK_ASSIGN(source, DraftModel::attach(*setup.draft_engine, target));
    setup.source = std::move(source);
  }
  return setup;
}

Json speculation_json(const SpeculationStats& stats) {
  return {{"steps", stats.steps},
          {"proposed", stats.proposed},
          {"accepted", stats.accepted},
          {"acceptance_rate", stats.acceptance_rate()},
          {"tokens_per_step", stats.tokens_per_step()}};
}

}  // namespace brisk::cli
