// brisk train: fine-tune a float Llama-family model on text files with next-token cross-entropy
// (train/training_run.h), on the CPU.
#include <cstdio>
#include <memory>

#include "common.h"
#include "train/training_run.h"

namespace brisk::cli {

Command add_train(CLI::App& app) {
  struct Flags {
    train::TrainOptions run;
    std::string model, out, eval;
    std::vector<std::string> data;
    int64_t batch_tokens = 1024;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand(
      "train",
      "Fine-tune a model (llama or qwen2, float weights) on text files with next-token\n"
      "cross-entropy, fp32 on the CPU: AdamW (PyTorch's), linear warmup then cosine decay,\n"
      "global gradient-norm clipping, gradient accumulation. The files are tokenized with the\n"
      "model's tokenizer, joined by its EOS token and cut into windows visited in a seeded order.\n"
      "Writes a Hugging Face folder (fp32 weights, the source's config and tokenizer) and\n"
      "train_state.safetensors (weights, AdamW moments, step, data position): --resume continues\n"
      "from it bit for bit");
  add_model_option(sub, f->model, "Model folder (llama or qwen2 model_type, F32/F16/BF16 weights)");
  sub->add_option("--data", f->data, "Training text files (UTF-8), one or more")->required()->expected(1, -1);
  sub->add_option("-o,--out", f->out, "Output folder (must be absent or empty, unless --resume)")->required();
  sub->add_option("--steps", f->run.steps, "Optimizer steps")->capture_default_str()->check(in_range(1, 1e9));
  sub->add_option("--window", f->run.window, "Tokens per training sequence")->capture_default_str()->check(in_range(2, 1 << 20));
  sub->add_option("--batch-tokens", f->batch_tokens,
                  "Tokens per micro-batch (rounded down to whole windows, at least one)")
      ->capture_default_str()->check(in_range(1, 1e9));
  sub->add_option("--accumulate", f->run.accumulation, "Micro-batches per optimizer step")
      ->capture_default_str()->check(in_range(1, 1e6));
  sub->add_option("--lr", f->run.schedule.peak, "Peak learning rate")->capture_default_str()->check(positive());
  sub->add_option("--min-lr", f->run.schedule.min_lr, "Learning rate at the end of the cosine decay")
      ->capture_default_str()->check(non_negative());
  sub->add_option("--warmup", f->run.schedule.warmup, "Linear warmup steps")->capture_default_str()->check(in_range(0, 1e9));
  sub->add_option("--weight-decay", f->run.adam.weight_decay, "AdamW's decoupled weight decay")
      ->capture_default_str()->check(non_negative());
  sub->add_option("--clip", f->run.clip, "Global gradient-norm limit (0: none)")->capture_default_str()->check(non_negative());
  sub->add_option("--seed", f->run.seed, "Seed of the data order")->capture_default_str();
  sub->add_option("--eval", f->eval, "Held-out text: perplexity by 'brisk perplexity's protocol");
  sub->add_option("--eval-every", f->run.eval_every, "Steps between evaluations (0: only at the end)")
      ->capture_default_str()->check(in_range(0, 1e9));
  sub->add_option("--eval-ctx", f->run.eval_ctx, "Perplexity window in tokens")->capture_default_str()->check(in_range(2, 1 << 20));
  sub->add_option("--eval-windows", f->run.eval_windows, "Evaluate at most this many windows (0: all)")
      ->capture_default_str()->check(in_range(0, 1e9));
  sub->add_option("--checkpoint-every", f->run.checkpoint_every, "Steps between checkpoints (0: only at the end)")
      ->capture_default_str()->check(in_range(0, 1e9));
  sub->add_flag("--resume", f->run.resume, "Continue the run whose train_state.safetensors is in --out");
  sub->add_option("-t,--threads", f->run.threads, "CPU threads (0: all cores)")->capture_default_str()->check(in_range(0, 4096));
  sub->add_flag("--json", f->json,
                "Print {\"initial_loss\", \"final_loss\", \"eval_ppl\", \"tokens\", \"tokens_per_s\", \"seconds\", \"steps\"}");
  return {sub, [f]() {
    train::TrainOptions& o = f->run;
    o.model = f->model;
    o.out = f->out;
    for (const std::string& d : f->data) o.data.emplace_back(d);
    if (!f->eval.empty()) o.eval = f->eval;
    o.batch_windows = std::max<int64_t>(1, f->batch_tokens / o.window);
    o.schedule.total = o.steps;
    if (o.schedule.min_lr > o.schedule.peak) return fail("--min-lr is above --lr");
    ProgressBar bar("train");
    auto report = train::run_training(o, [&](const train::StepReport& r) {
      char detail[160];
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
    if (f->json) {
      print_json({{"initial_loss", r.initial_loss}, {"final_loss", r.final_loss},
                  {"eval_ppl", r.eval_ppl ? Json(*r.eval_ppl) : Json(nullptr)}, {"tokens", r.tokens},
                  {"tokens_per_s", r.tokens_per_s}, {"seconds", r.seconds}, {"steps", r.steps}});
    } else {
      std::printf("trained %lld steps (%lld tokens) in %.1f s, %.0f tokens/s: loss %.4f -> %.4f", (long long)r.steps,
                  (long long)r.tokens, r.seconds, r.tokens_per_s, r.initial_loss, r.final_loss);
      if (r.eval_ppl) std::printf(", eval ppl %.4f", *r.eval_ppl);
      std::printf("\nwrote %s\n", f->out.c_str());
    }
    return 0;
  }};
}

}  // namespace brisk::cli
