#include "train/training_run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <string>

#include "backends/cpu/cpu_backend.h"
#include "compress/quantize_model.h"
#include "core/mapped_file.h"
#include "formats/model_folder.h"
#include "formats/safetensors.h"
#include "formats/weight_store.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "train/checkpoint.h"
#include "train/decoder_trainer.h"
#include "train/token_windows.h"

namespace brisk::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStateFile = "train_state.safetensors";

Status check_options(const TrainOptions& o) {
  if (o.steps < 1) return make_error("--steps must be at least 1");
  if (o.window < 2) return make_error("--window must be at least 2 tokens");
  if (o.batch_windows < 1 || o.accumulation < 1)
    return make_error("a micro-batch needs at least one window (--batch-tokens) and --accumulate at least 1");
  if (o.eval_ctx < 2) return make_error("--eval-ctx must be at least 2 tokens");
  if (!(o.l1 >= 0 && o.l1 < 1)) return make_error("--l1 must be in [0, 1)");
  if (o.data.empty()) return make_error("no training text given (--data)");
  if (o.out.empty()) return make_error("no output folder given (-o)");
  if (o.new_shape && o.distill) return make_error("a new distillation student comes from its own shape options, not new_shape");
  if (!o.resume && fs::exists(o.out) && !fs::is_empty(o.out))
    return make_error(o.out.string() + " is not empty (pass --resume to continue the run saved there)");
  if (o.resume && !fs::exists(checkpoint_path(o.out)))
    return make_error("--resume: " + checkpoint_path(o.out).string() + " does not exist");
  return ok_status();
}

// Perplexity of `tokens` by `brisk perplexity`'s protocol: consecutive windows of ctx tokens (the
// last partial one dropped), positions 0..ctx-2 of each predicting tokens 1..ctx-1.
Result<double> eval_perplexity(DecoderTrainer& trainer, const std::vector<int32_t>& tokens, int64_t ctx,
                               int64_t max_windows) {
  int64_t windows = int64_t(tokens.size()) / ctx;
  if (max_windows > 0) windows = std::min(windows, max_windows);
  if (windows == 0)
    return make_error("the eval text has " + std::to_string(tokens.size()) + " tokens: fewer than one window of " +
                      std::to_string(ctx));
  double nll = 0;
  for (int64_t w = 0; w < windows; ++w) {
    const std::span<const int32_t> window(tokens.data() + w * ctx, size_t(ctx));
    nll += trainer.cross_entropy(window, 1, ctx - 1) * double(ctx - 1);
  }
  return std::exp(nll / double(windows * (ctx - 1)));
}

// The saved parameters by name (the file keeps them sorted by name, the run in its own order).
Status restore(TrainState& saved, const std::vector<TrainState::Parameter*>& params, const fs::path& path) {
  if (saved.parameters.size() != params.size())
    return make_error(path.string() + ": " + std::to_string(saved.parameters.size()) + " parameters, this run has " +
                      std::to_string(params.size()) + " (the same model and --feature-layers?)");
  std::map<std::string, TrainState::Parameter*> by_name;
  for (TrainState::Parameter& s : saved.parameters) by_name[s.name] = &s;
  for (TrainState::Parameter* p : params) {
    auto it = by_name.find(p->name);
    if (it == by_name.end()) return make_error(path.string() + ": no parameter '" + p->name + "'");
    if (it->second->shape != p->shape)
      return make_error(path.string() + ": parameter '" + p->name + "' has another shape than this run's");
    *p = std::move(*it->second);
  }
  return ok_status();
}

// The trainer of the model in `dir`, refused when `window` tokens (the training windows, the
// evaluation's) pass what its positions reach.
Result<std::unique_ptr<DecoderTrainer>> load_trainer(const fs::path& dir, int threads, int64_t window) {
  CpuBackend backend(1);  // only to load: the trainer keeps fp32 copies and its own threads
  ModelOptions load_options;
  load_options.max_rows = 64;
  BRISK_ASSIGN(model, load_model(dir, backend, load_options));
  BRISK_ASSIGN(trainer, DecoderTrainer::from_model(*model, threads));
  if (window > trainer->max_window())
    return make_error(dir.string() + ": windows of " + std::to_string(window) + " tokens (--window, --eval-ctx) pass its " +
                      std::to_string(trainer->max_window()) + " learned positions");
  return trainer;
}

// The bytes of a folder's tokenizer definition (tokenizer.json, else tokenizer.model).
std::string tokenizer_bytes(const fs::path& dir) {
  for (const char* name : {"tokenizer.json", "tokenizer.model"})
    if (auto text = read_text_file(dir / name, size_t(1) << 30); text.ok()) return text.value();
  return {};
}

// The trained model as a Hugging Face folder: fp32 weights, every other file of the source folder
// (config, tokenizer, generation config) copied.
Status write_model_folder(const fs::path& source, const fs::path& out, const std::vector<TrainState::Parameter>& params) {
  if (Status st = copy_model_side_files(source, out, ConfigFile::Copy); !st.ok()) return st;
  std::vector<NamedTensor> tensors;
  std::vector<std::vector<float>> transposed;  // keeps the transposed copies alive until written
  transposed.reserve(params.size());
  for (const TrainState::Parameter& p : params) {
    Tensor t;
    t.data = const_cast<float*>(p.value.data());  // written, not modified
    t.dtype = DType::F32;
    t.shape = p.shape;
    if (p.stored_transposed) {
      const int64_t rows = p.shape[0], cols = p.shape[1];
      std::vector<float>& copy = transposed.emplace_back(p.value.size());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) copy[size_t(c * rows + r)] = p.value[size_t(r * cols + c)];
      t.data = copy.data();
      t.shape = {cols, rows};
    }
    tensors.push_back({p.name, t});
  }
  const fs::path partial = out / "model.safetensors.partial";
  if (Status st = write_safetensors(partial, tensors, {{"format", "pt"}}); !st.ok()) return st;
  std::error_code ec;
  fs::rename(partial, out / "model.safetensors", ec);
  if (ec) return make_error("renaming " + partial.string() + ": " + ec.message());
  return ok_status();
}

// The float dtype the model folder stores its weights in (the first F16/BF16 tensor's, else F32).
Result<DType> stored_float_dtype(const fs::path& dir) {
  BRISK_ASSIGN(store, WeightStore::open_dir(dir));
  for (const auto& [name, stored] : store.all())
    if (stored.tensor.dtype == DType::BF16 || stored.tensor.dtype == DType::F16) return stored.tensor.dtype;
  return DType::F32;
}

}  // namespace

fs::path checkpoint_path(const fs::path& out) { return out / kStateFile; }
fs::path initial_student_path(const fs::path& out) { return out / "initial_student"; }
fs::path initial_model_path(const fs::path& out) { return out / "initial_model"; }

Result<TrainReport> run_training(const TrainOptions& options, const std::function<void(const StepReport&)>& on_step) {
  if (Status st = check_options(options); !st.ok()) return st.error();
  TrainOptions o = options;
  if (o.new_shape) {
    StudentOptions fresh;
    fresh.teacher = o.model;  // the base: its config (but the shape) and tokenizer
    fresh.shape = *o.new_shape;
    fresh.seed = o.seed;
    fresh.out = o.model = initial_model_path(o.out);
    if (!o.resume)
      if (Status st = write_student(fresh); !st.ok()) return st.error();
  }
  if (o.distill && o.distill->student) {
    o.model = initial_student_path(o.out);
    if (!o.resume) {
      StudentOptions student = *o.distill->student;
      student.teacher = o.distill->teacher;
      student.out = o.model;
      if (Status st = write_student(student); !st.ok()) return st.error();
    }
  }
  const int64_t longest_window = std::max(o.window, o.eval ? o.eval_ctx - 1 : 0);
  BRISK_ASSIGN(trainer, load_trainer(o.model, o.threads, longest_window));
  trainer->set_activation_memory(o.activations);
  if (o.keep_sparsity) {  // from the model as given (a resumed run restores onto the same mask)
    trainer->freeze_zeros();
    if (trainer->frozen_zeros() == 0)
      return make_error("--keep-sparsity: " + o.model.string() + " has no zero weights in its layers (prune it first)");
  }
  if (o.qat)
    if (Status st = trainer->set_fake_quantization(*o.qat); !st.ok()) return st.error();
  std::unique_ptr<DecoderTrainer> teacher;
  std::unique_ptr<Distiller> distiller;
  if (o.distill) {
    if (tokenizer_bytes(o.model) != tokenizer_bytes(o.distill->teacher))
      return make_error("the student (" + o.model.string() + ") and the teacher (" + o.distill->teacher.string() +
                        ") have different tokenizers: distillation needs one");
    // At alpha 0 with no feature terms the loss is the student's cross-entropy: the teacher would
    // run for nothing (the CE baseline of bench/distill_sotu.sh).
    const bool teacher_needed = o.distill->loss.alpha > 0 || !o.distill->loss.feature_layers.empty();
    if (teacher_needed) {
      BRISK_ASSIGN(loaded, load_trainer(o.distill->teacher, o.threads, o.window));
      teacher = std::move(loaded);
      // Its backward pass never runs: of its activations only the layer outputs (feature terms) are read.
      teacher->set_activation_memory(ActivationMemory::LayerInputs);
      BRISK_ASSIGN(made, Distiller::create(*trainer, *teacher, o.distill->loss, o.seed));
      distiller = std::move(made);
    }
  }
  BRISK_ASSIGN(tokenizer, Tokenizer::load(o.model));
  BRISK_ASSIGN(windows, TokenWindows::from_files(*tokenizer, o.data, o.window));
  std::vector<int32_t> eval_tokens;
  if (o.eval) {
    BRISK_ASSIGN(text, read_text_file(*o.eval, size_t(1) << 30));
    if (Status valid = utf8::require_valid(text, o.eval->string()); !valid.ok()) return valid.error();
    eval_tokens = tokenizer->encode(text, AddSpecial::No);
  }

  // What the optimizer steps: the model's parameters, then the distillation projections.
  std::vector<TrainState::Parameter*> params;
  std::vector<std::pair<float*, int64_t>> grads;
  auto optimize = [&](std::vector<TrainState::Parameter>& values, std::vector<std::vector<float>>& gradients) {
    for (size_t i = 0; i < values.size(); ++i) {
      params.push_back(&values[i]);
      grads.emplace_back(gradients[i].data(), int64_t(gradients[i].size()));
    }
  };
  optimize(trainer->parameters(), trainer->gradients());
  if (distiller) optimize(distiller->projections(), distiller->projection_gradients());
  auto zero_gradients = [&]() {
    for (auto [g, n] : grads) std::fill(g, g + n, 0.0f);
  };

  TrainState state;  // step and data position; the parameters live in the trainer
  state.seed = o.seed;
  if (o.resume) {
    BRISK_ASSIGN(saved, load_checkpoint(checkpoint_path(o.out)));
    if (Status st = restore(saved, params, checkpoint_path(o.out)); !st.ok()) return st.error();
    if (Status st = trainer->refresh_fake_quantization(); !st.ok()) return st.error();
    state.step = saved.step, state.epoch = saved.epoch, state.window = saved.window, state.seed = saved.seed;
    if (state.step >= o.steps)
      return make_error("--resume: the run saved in " + o.out.string() + " has taken " + std::to_string(state.step) +
                        " steps already (--steps " + std::to_string(o.steps) + ")");
  }
  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec) return make_error("creating " + o.out.string() + ": " + ec.message());
  auto save_state = [&]() {
    for (TrainState::Parameter* p : params) state.parameters.push_back(*p);  // values and moments as they are now
    Status st = save_checkpoint(checkpoint_path(o.out), state);
    state.parameters.clear();
    return st;
  };

  const AdamW optimizer(o.adam);
  const int64_t tokens_per_step = o.batch_windows * o.accumulation * o.window;
  TrainReport report;
  const auto start = std::chrono::steady_clock::now();
  std::vector<int32_t> batch;
  zero_gradients();
  for (int64_t step = state.step + 1; step <= o.steps; ++step) {
    double loss = 0;
    DistillTerms terms;
    for (int64_t a = 0; a < o.accumulation; ++a) {
      batch.clear();
      for (int64_t b = 0; b < o.batch_windows; ++b) {
        const std::span<const int32_t> w = windows.at(state.epoch, state.window, state.seed);
        batch.insert(batch.end(), w.begin(), w.end());
        if (++state.window == windows.size()) state.window = 0, ++state.epoch;
      }
      const double share = 1.0 / double(o.accumulation);
      if (distiller) {
        const DistillTerms t = distiller->step(batch, o.batch_windows, o.window);
        terms.total += t.total * share, terms.cross_entropy += t.cross_entropy * share;
        terms.kl += t.kl * share, terms.feature += t.feature * share;
        loss += t.total * share;
      } else {
        loss += trainer->cross_entropy_step(batch, o.batch_windows, o.window) * share;
      }
    }
    if (o.accumulation > 1)
      for (auto [g, n] : grads)
        for (int64_t i = 0; i < n; ++i) g[i] /= float(o.accumulation);
    if (o.l1 > 0) trainer->add_l1_gradient(o.l1);
    trainer->drop_frozen_gradients();
    StepReport r;
    r.step = step, r.steps = o.steps, r.loss = loss, r.terms = terms, r.lr = o.schedule.at(step);
    r.grad_norm = clip_grad_norm(grads, o.clip > 0 ? o.clip : std::numeric_limits<double>::infinity());
    for (size_t p = 0; p < params.size(); ++p)
      optimizer.update(params[p]->value.data(), grads[p].first, grads[p].second, params[p]->adam, step, r.lr);
    zero_gradients();
    trainer->zero_frozen_weights();
    if (Status st = trainer->refresh_fake_quantization(); !st.ok()) return st.error();
    state.step = step;
    report.tokens += tokens_per_step;
    ++report.steps;
    if (report.steps == 1) report.initial_loss = loss;
    report.final_loss = loss;
    if (o.eval && o.eval_every > 0 && step % o.eval_every == 0 && step != o.steps) {
      BRISK_ASSIGN(ppl, eval_perplexity(*trainer, eval_tokens, o.eval_ctx, o.eval_windows));
      r.eval_ppl = ppl;
    }
    if (o.checkpoint_every > 0 && step % o.checkpoint_every == 0 && step != o.steps)
      if (Status st = save_state(); !st.ok()) return st.error();
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    r.tokens_per_s = double(report.tokens) / std::max(r.seconds, 1e-9);
    if (on_step) on_step(r);
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report.tokens_per_s = double(report.tokens) / std::max(report.seconds, 1e-9);
  if (Status st = save_state(); !st.ok()) return st.error();
  if (o.eval) {
    BRISK_ASSIGN(ppl, eval_perplexity(*trainer, eval_tokens, o.eval_ctx, o.eval_windows));
    report.eval_ppl = ppl;
  }
  if (!o.qat) {
    if (Status st = write_model_folder(o.model, o.out, trainer->parameters()); !st.ok()) return st.error();
    return report;
  }
  // QAT: the fp32 result in <out>/float, quantized (by the spec it trained under) into <out>.
  const fs::path float_dir = o.out / "float", staging = o.out / ".quantized.partial";
  fs::remove_all(float_dir, ec);
  fs::remove_all(staging, ec);
  fs::create_directories(float_dir, ec);
  if (ec) return make_error("creating " + float_dir.string() + ": " + ec.message());
  if (Status st = write_model_folder(o.model, float_dir, trainer->parameters()); !st.ok()) return st.error();
  QuantizeModelOptions q;
  q.in = float_dir;
  q.out = staging;
  q.spec = o.qat->spec;
  q.recipe = &o.qat->modules;
  BRISK_ASSIGN(source_dtype, stored_float_dtype(o.model));
  q.kept_dtype = source_dtype;  // what stays float is stored as the source stored it
  q.threads = o.threads;
  BRISK_ASSIGN(quantized, quantize_model(q));
  (void)quantized;
  for (const fs::directory_entry& e : fs::directory_iterator(staging, ec)) {
    fs::rename(e.path(), o.out / e.path().filename(), ec);
    if (ec) return make_error("moving " + e.path().string() + " into " + o.out.string() + ": " + ec.message());
  }
  fs::remove_all(staging, ec);
  return report;
}

}  // namespace brisk::train
