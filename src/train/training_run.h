// One `brisk train` / `brisk distill` run (issue 21): a float Llama-family model folder trained on
// text files on the CPU (DecoderTrainer) with next-token cross-entropy, or with a teacher's logits
// and hidden states (Distiller) -- AdamW with warmup + cosine, global-norm
// clipping and gradient accumulation; eval perplexity on a held-out file by `brisk perplexity`'s
// protocol; a checkpoint of parameters, moments and data position every N steps from which a
// resumed run continues bit for bit; the result written as a Hugging Face folder (fp32 weights, the
// source's config and tokenizer files).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <vector>

#include "core/error.h"
#include "train/adamw.h"
#include "train/distillation.h"
#include "train/lr_schedule.h"
#include "train/student_init.h"

namespace brisk::train {

// Distillation: the teacher and the loss. The student is TrainOptions::model, or, with `student`,
// a new one written to <out>/initial_student first (StudentOptions::teacher and out are set there).
struct DistillOptions {
  std::filesystem::path teacher;  // a float llama / qwen2 / gpt2 folder with the student's tokenizer
  DistillLoss loss;
  std::optional<StudentOptions> student;
};

struct TrainOptions {
  // A float llama / qwen2 / gpt2 Hugging Face folder (the student when distilling; with new_shape,
  // the base whose config and tokenizer the new model takes).
  std::filesystem::path model;
  // `brisk train --shape`: train a new model of this shape, random weights seeded by `seed`, written
  // to <out>/initial_model first.
  std::optional<StudentShape> new_shape;
  std::optional<DistillOptions> distill;
  std::vector<std::filesystem::path> data;
  std::optional<std::filesystem::path> eval;  // held-out text for perplexity
  std::filesystem::path out;                  // the trained model folder (created)
  int64_t steps = 100;
  int64_t window = 256;           // tokens per training sequence
  int64_t batch_windows = 4;      // sequences per micro-batch
  int64_t accumulation = 1;       // micro-batches per optimizer step
  LrSchedule schedule{3e-4, 3e-5, 10, 100};
  AdamWOptions adam;
  double clip = 1.0;              // global gradient-norm limit (0: none)
  uint64_t seed = 0;              // the data order
  int64_t eval_every = 0;         // steps between evaluations (0: only at the end)
  int64_t eval_ctx = 512;         // perplexity window
  int64_t eval_windows = 0;       // evaluate at most this many windows (0: all)
  int64_t checkpoint_every = 0;   // steps between checkpoints (0: only at the end)
  bool resume = false;            // continue from out/train_state.safetensors
  // Quantization-aware training: the layers compute with fake-quantized weights; the output is the
  // trained model quantized by the same recipe (brisk quantize's RTN; lm_head by the recipe where
  // it names it, else by the default policy), and the fp32 weights it came from go to <out>/float.
  std::optional<QatRecipe> qat;
  ActivationMemory activations = ActivationMemory::All;
  // Recovery fine-tuning of a pruned model: the layers' weights that are zero in `model` stay zero.
  bool keep_sparsity = false;
  // L1-regularised (sparse) training: lambda * sum |w| over the layers' linear weights added to the
  // loss through its subgradient (the reported loss excludes it). 0: off.
  double l1 = 0;  // of the trained model (the teacher keeps layer inputs)
  int threads = 0;                // 0: all cores
};

// What the progress callback sees after each optimizer step.
struct StepReport {
  int64_t step = 0, steps = 0;
  double loss = 0, lr = 0, grad_norm = 0;
  DistillTerms terms;  // distillation: the loss's parts (means over the step's micro-batches)
  double tokens_per_s = 0, seconds = 0;
  std::optional<double> eval_ppl;  // set on the steps that evaluated
};

struct TrainReport {
  double initial_loss = 0, final_loss = 0;  // the first and the last step's mean loss
  std::optional<double> eval_ppl;           // at the end, when an eval file was given
  int64_t steps = 0, tokens = 0;            // this run's steps and training tokens
  double seconds = 0, tokens_per_s = 0;
};

// The checkpoint a run writes and `resume` reads: <out>/train_state.safetensors.
std::filesystem::path checkpoint_path(const std::filesystem::path& out);
// Where a distillation run writes the student it creates: <out>/initial_student.
std::filesystem::path initial_student_path(const std::filesystem::path& out);
// Where `brisk train --shape` writes the new model it trains: <out>/initial_model.
std::filesystem::path initial_model_path(const std::filesystem::path& out);

Result<TrainReport> run_training(const TrainOptions& options,
                                 const std::function<void(const StepReport&)>& on_step = {});

}  // namespace brisk::train
