// brisk train: fine-tune a float llama / qwen2 / gpt2 model, or train a new one of a given shape, on
// text files with next-token cross-entropy (train/training_run.h), on the CPU.
#include <memory>

#include "train_flags.h"

namespace brisk::cli {

Command add_train(CLI::App& app) {
  auto f = std::make_shared<TrainFlags>();
  std::shared_ptr<std::string> model = std::make_shared<std::string>(), shape = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand(
      "train",
      "Fine-tune a model (llama, qwen2 or gpt2, float weights) on text files with next-token\n"
      "cross-entropy, fp32 on the CPU: AdamW (PyTorch's), linear warmup then cosine decay,\n"
      "global gradient-norm clipping, gradient accumulation. The files are tokenized with the\n"
      "model's tokenizer, joined by its EOS token and cut into windows visited in a seeded order.\n"
      "Writes a Hugging Face folder (fp32 weights, the source's config and tokenizer) and\n"
      "train_state.safetensors (weights, AdamW moments, step, data position): --resume continues\n"
      "from it bit for bit");
  add_model_option(sub, *model, "Model folder (llama, qwen2 or gpt2 model_type, F32/F16/BF16 weights)");
  sub->add_option("--shape", *shape,
                  "Train a new model instead: layers=L,hidden=H,heads=A,kv_heads=K,ffn=F[,arch=llama|gpt2] (missing "
                  "keys: the -m model's), random weights (--seed), the -m model's config and tokenizer otherwise; "
                  "written to OUT/initial_model first");
  add_training_flags(sub, *f);
  return {sub, [f, model, shape, sub]() {
    if (const std::string unused = unused_training_flag(*sub, *f); !unused.empty()) return fail(unused);
    f->run.model = *model;
    if (!shape->empty()) {
      auto parsed = train::parse_student_shape(*shape, "--shape");
      if (!parsed.ok()) return fail(parsed.error().message);
      f->run.new_shape = parsed.value();
    }
    return run_and_report(*f);
  }};
}

}  // namespace brisk::cli
