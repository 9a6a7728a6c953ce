#include "optimize/recipe_writer.h"

#include "backends/cpu/cpu_backend.h"
#include "compress/calib_weights.h"
#include "compress/calibration.h"
#include "compress/prune.h"
#include "formats/model_folder.h"

namespace brisk::recipe {

namespace fs = std::filesystem;

RecipeModules recipe_modules(const Sensitivity& sens, const std::vector<Candidate>& candidates,
                             const std::vector<int>& choice) {
  RecipeModules r;
  for (size_t g = 0; g < sens.groups.size(); ++g) {
    const SearchGroup& group = sens.groups[g];
    const Candidate& c = candidates[size_t(choice[g])];
    for (const MatrixShape& m : group.matrices) {
      if (c.low_rank) {  // the module becomes two, both kept in the stored dtype
        r.factored.push_back(factors_for(sens, m.tensor, c));
        for (Factor f : {Factor::Input, Factor::Output}) r.specs[factor_module(m.module, f)] = std::nullopt;
        continue;
      }
      r.specs[m.module] = c.spec;
      if (c.prune) r.pruned[m.tensor] = &c;
      if (c.method != calib::Method::Rtn) r.calibrated.matrices[m.tensor] = sens.calibrated.at(m.tensor).at(c.name);
    }
    if (c.method == calib::Method::Awq)  // its scales live in the norm before the group
      for (const std::string& name : group.norm_fold->folded_tensors())
        r.calibrated.values[name] = sens.folded.at(name).at(c.name);
  }
  return r;
}

namespace {

// The format of modules the recipe does not name: every searched module is named, so none.
QuantSpec unnamed_module_spec(const std::vector<Candidate>& candidates) {
  return candidates.back().spec.value_or(QuantSpec{});
}

// Prunes the weights of `pruned` as they were scored (their candidate, the base model's inputs).
Status prune_as_scored(const Sensitivity& sens, const std::string& tensor, const Candidate& candidate,
                       std::vector<float>& w, int64_t rows, int64_t cols) {
  return apply_pruning(candidate, w, rows, cols, sens.inputs.at(tensor).get(), tensor);
}

}  // namespace

Status write_recipe(const fs::path& model, const fs::path& out, const Sensitivity& sens,
                    const std::vector<Candidate>& candidates, const std::vector<int>& choice, int threads) {
  const RecipeModules r = recipe_modules(sens, candidates, choice);
  // Low-rank modules: the model factored first, into a folder beside `out`, then quantized from it.
  const fs::path factored = folder_beside(out, ".factored");
  const RemovedOnExit cleanup(factored);
  if (!r.factored.empty()) {
    std::error_code ec;
    fs::remove_all(factored, ec);
    calib::LowRankModel low_rank;
    low_rank.matrices = r.factored;
    BRISK_TRY(calib::write_low_rank_model(model, factored, low_rank, calib::LowRankMethod::SvdLlm));
  }
  QuantizeModelOptions q;
  q.in = r.factored.empty() ? model : factored;
  q.out = out;
  q.spec = unnamed_module_spec(candidates);
  q.recipe = &r.specs;
  q.overrides = &r.calibrated;
  q.threads = threads;
  q.before_quantize = [&](const std::string& tensor, std::vector<float>& w, int64_t rows, int64_t cols) -> Status {
    auto c = r.pruned.find(tensor);
    return c == r.pruned.end() ? ok_status() : prune_as_scored(sens, tensor, *c->second, w, rows, cols);
  };
  BRISK_ASSIGN(report, quantize_model(q));
  (void)report;
  return ok_status();
}

Result<train::TrainReport> write_recovered_recipe(const fs::path& model, const fs::path& out, const Sensitivity& sens,
                                                  const std::vector<Candidate>& candidates,
                                                  const std::vector<int>& choice, const RecoveryOptions& o) {
  const RecipeModules r = recipe_modules(sens, candidates, choice);
  if (!r.factored.empty()) return make_error("--recover trains whole matrices; this recipe factors " + r.factored.front().name);
  std::error_code ec;
  fs::path student = model;
  if (!r.pruned.empty()) {  // the base weights with the recipe's zeros, in the source's dtype
    CpuBackend cpu(o.threads);
    calib::CalibratingBackend row_major(cpu);
    calib::CalibrationOptions load;
    load.window = o.window;
    BRISK_ASSIGN(loaded, calib::load_for_calibration(model, row_major, load));
    calib::PrunedModel pruned;
    pruned.weights = calib::FloatWeights::copy_from(*loaded);
    for (const auto& [tensor, candidate] : r.pruned) {
      std::vector<float>& w = pruned.weights.at(tensor);
      BRISK_TRY(prune_as_scored(sens, tensor, *candidate, w, pruned.weights.rows(tensor), pruned.weights.cols(tensor)));
      pruned.sparsity[tensor] = 0;  // written from `weights`; the fraction is not reported here
    }
    student = o.scratch / "recovery-student";
    fs::remove_all(student, ec);
    BRISK_TRY(calib::write_pruned_model(model, student, pruned));
  }
  RemovedOnExit cleanup(student);
  if (student == model) cleanup.release();  // not ours

  train::TrainOptions t;
  t.model = student;
  // Pure distillation at temperature 1 (no cross-entropy on the text): the student is pulled toward
  // the base model's distributions, not fine-tuned on the calibration text (with brisk distill's
  // default half cross-entropy, 40 steps took sotu-llama's mix to ppl 79.2 against the base's 89.0).
  train::DistillLoss loss;
  loss.alpha = 1.0;
  loss.temperature = 1.0;
  t.distill = train::DistillOptions{model, loss, std::nullopt};
  t.data = {o.data};
  t.out = out;
  t.steps = o.steps;
  t.window = o.window;
  // A short fine-tune from a good start: a third of brisk train's default peak, warmup a tenth.
  t.schedule = train::LrSchedule{1e-4, 1e-5, std::max<int64_t>(o.steps / 10, 1), o.steps};
  t.qat = train::QatRecipe{unnamed_module_spec(candidates), r.specs};
  t.keep_sparsity = !r.pruned.empty();
  t.threads = o.threads;
  BRISK_ASSIGN(report, train::run_training(t));
  fs::remove_all(out / "float", ec);  // the trainer's fp32 copy and checkpoint: not part of the answer
  fs::remove(train::checkpoint_path(out), ec);
  return report;
}

}  // namespace brisk::recipe
