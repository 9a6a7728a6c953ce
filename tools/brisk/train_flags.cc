#include "train_flags.h"

#include <cstdio>

namespace brisk::cli {

void add_training_flags(CLI::App* sub, TrainFlags& f) {
  train::TrainOptions& o = f.run;
  sub->add_option("--data", f.data, "Training text files (UTF-8), one or more")->required()->expected(1, -1);
  sub->add_option("-o,--out", f.out, "Output folder (must be absent or empty, unless --resume)")->required();
  sub->add_option("--steps", o.steps, "Optimizer steps")->capture_default_str()->check(in_range(1, 1e9));
  sub->add_option("--window", o.window, "Tokens per training sequence")->capture_default_str()->check(in_range(2, 1 << 20));
  sub->add_option("--batch-tokens", f.batch_tokens, "Tokens per micro-batch (rounded down to whole windows, at least one)")
      ->capture_default_str()->check(in_range(1, 1e9));
  sub->add_option("--accumulate", o.accumulation, "Micro-batches per optimizer step")->capture_default_str()->check(in_range(1, 1e6));
  sub->add_option("--lr", o.schedule.peak, "Peak learning rate")->capture_default_str()->check(positive());
  sub->add_option("--min-lr", o.schedule.min_lr, "Learning rate at the end of the cosine decay")
      ->capture_default_str()->check(non_negative());
  sub->add_option("--warmup", o.schedule.warmup, "Linear warmup steps")->capture_default_str()->check(in_range(0, 1e9));
  sub->add_option("--weight-decay", o.adam.weight_decay, "AdamW's decoupled weight decay")
      ->capture_default_str()->check(non_negative());
  sub->add_option("--clip", o.clip, "Global gradient-norm limit (0: none)")->capture_default_str()->check(non_negative());
  sub->add_option("--seed", o.seed, "Seed of the data order (and of new weights)")->capture_default_str();
  sub->add_option("--eval", f.eval, "Held-out text: perplexity by 'brisk perplexity's protocol");
  sub->add_option("--eval-every", o.eval_every, "Steps between evaluations (0: only at the end)")
      ->capture_default_str()->check(in_range(0, 1e9));
  sub->add_option("--eval-ctx", o.eval_ctx, "Perplexity window in tokens")->capture_default_str()->check(in_range(2, 1 << 20));
  sub->add_option("--eval-windows", o.eval_windows, "Evaluate at most this many windows (0: all)")
      ->capture_default_str()->check(in_range(0, 1e9));
  sub->add_option("--checkpoint-every", o.checkpoint_every, "Steps between checkpoints (0: only at the end)")
      ->capture_default_str()->check(in_range(0, 1e9));
  sub->add_flag("--resume", o.resume, "Continue the run whose train_state.safetensors is in --out");
  sub->add_option("--qat", f.qat,
                  "Quantization-aware training for a scheme (w8, w4, fp8, nf4, ...): the layers compute with\n"
                  "fake-quantized weights (straight-through gradients); the output is quantized with it\n"
                  "(the fp32 weights go to OUT/float)");
  sub->add_option("--qat-group", f.qat_group, "Values per scale for 4-bit --qat schemes (a multiple of 128)")
      ->capture_default_str()->check(in_range(128, 1 << 20));
  sub->add_option("--l1", o.l1,
                  "L1-regularised sparse training: lambda * sum |w| of the layers' linear weights added to the loss\n"
                  "(through its subgradient; the printed loss leaves it out)")
      ->check(CLI::Range(0.0, 0.999));
  sub->add_flag("--keep-sparsity", o.keep_sparsity,
                "Recovery fine-tuning of a pruned model (brisk prune): the layers' weights that are zero stay zero");
  sub->add_flag("--recompute", f.recompute,
                "Activation checkpointing: keep each layer's input only and run the layer again in the backward\n"
                "pass (about one more forward of work; the activations of one layer in memory instead of all;\n"
                "the same results bit for bit)");
  sub->add_option("-t,--threads", o.threads, "CPU threads (0: all cores)")->capture_default_str()->check(in_range(0, 4096));
  sub->add_flag("--json", f.json,
                "Print {\"initial_loss\", \"final_loss\", \"eval_ppl\", \"tokens\", \"tokens_per_s\", \"seconds\", \"steps\"}");
}

std::string unused_training_flag(const CLI::App& sub, const TrainFlags& f) {
  if (f.qat.empty() && sub.count("--qat-group")) return "--qat-group needs --qat";
  if (f.eval.empty())
    for (const char* flag : {"--eval-every", "--eval-ctx", "--eval-windows"})
      if (sub.count(flag)) return std::string(flag) + " needs --eval";
  return {};
}

int run_and_report(TrainFlags& f) {
  train::TrainOptions& o = f.run;
  o.out = f.out;
  o.data.clear();
  for (const std::string& d : f.data) o.data.emplace_back(d);
  if (!f.eval.empty()) o.eval = f.eval;
  o.batch_windows = std::max<int64_t>(1, f.batch_tokens / o.window);
  o.schedule.total = o.steps;
  o.activations = f.recompute ? train::ActivationMemory::LayerInputs : train::ActivationMemory::All;
  if (o.schedule.min_lr > o.schedule.peak) return fail("--min-lr is above --lr");
  if (!f.qat.empty()) {
    auto scheme = parse_quant_scheme(f.qat);
    if (!scheme) return fail("--qat: " + scheme.error().message);
    QuantSpec spec;
    spec.scheme = scheme.value();
    spec.group = f.qat_group;
    if (Status valid = validate_quant_spec(spec); !valid.ok()) return fail("--qat: " + valid.error().message);
    o.qat = train::QatRecipe{spec, {}};
  }
  ProgressBar bar(o.distill ? "distill" : "train");
  auto report = train::run_training(o, [&](const train::StepReport& r) {
    char detail[200];
    if (o.distill)
      std::snprintf(detail, sizeof(detail), "step %lld/%lld loss %.4f (ce %.3f kl %.3f feat %.3f) %.0f tok/s",
                    (long long)r.step, (long long)r.steps, r.loss, r.terms.cross_entropy, r.terms.kl, r.terms.feature,
                    r.tokens_per_s);
    else
      std::snprintf(detail, sizeof(detail), "step %lld/%lld loss %.4f lr %.2e %.0f tok/s", (long long)r.step,
                    (long long)r.steps, r.loss, r.lr, r.tokens_per_s);
    bar.update(double(r.step), double(r.steps), detail);
    if (r.eval_ppl) {
      bar.finish();
      std::fprintf(stderr, "step %lld: eval ppl %.4f\n", (long long)r.step, *r.eval_ppl);
    }
  });
  bar.finish();
  if (!report) return fail(report.error());
  const train::TrainReport& r = report.value();
  if (f.json) {
    print_json({{"initial_loss", r.initial_loss}, {"final_loss", r.final_loss},
                {"eval_ppl", r.eval_ppl ? Json(*r.eval_ppl) : Json(nullptr)}, {"tokens", r.tokens},
                {"tokens_per_s", r.tokens_per_s}, {"seconds", r.seconds}, {"steps", r.steps}});
  } else {
    std::printf("%s %lld steps (%lld tokens) in %.1f s, %.0f tokens/s: loss %.4f -> %.4f", o.distill ? "distilled" : "trained",
                (long long)r.steps, (long long)r.tokens, r.seconds, r.tokens_per_s, r.initial_loss, r.final_loss);
    if (r.eval_ppl) std::printf(", eval ppl %.4f", *r.eval_ppl);
    std::printf("\nwrote %s\n", f.out.c_str());
  }
  return 0;
}

}  // namespace brisk::cli
