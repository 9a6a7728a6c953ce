// brisk optimize's recipes as model folders: a recipe (a candidate index per searched group) is
// written by brisk quantize's writer with a format per module, the pruned modules pruned as they
// were scored (Wanda on the base model's inputs) and GPTQ's modules with the codes that were
// scored; the low-rank modules factored first as scored (brisk lowrank's writer, their factors
// then kept in the stored dtype); and, with --recover, trained back toward the base model first
// (quantization-aware distillation, train/training_run.h).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "compress/quantize_model.h"
#include "optimize/sensitivity.h"
#include "train/training_run.h"

namespace brisk::recipe {

// What one recipe asks of each module.
struct RecipeModules {
  ModuleRecipe specs;                              // module -> its format (nullopt: keep)
  std::map<std::string, const Candidate*> pruned;  // weight tensor -> the candidate that prunes it
  MethodOverrides calibrated;                      // GPTQ/AWQ codes and AWQ's folded norms, as scored
  std::vector<calib::FactoredMatrix> factored;     // the low-rank modules' factors, as scored
};
RecipeModules recipe_modules(const Sensitivity& sens, const std::vector<Candidate>& candidates,
                             const std::vector<int>& choice);

// Writes the recipe of the float model `model` into `out` (created; must not exist or be empty).
Status write_recipe(const std::filesystem::path& model, const std::filesystem::path& out, const Sensitivity& sens,
                    const std::vector<Candidate>& candidates, const std::vector<int>& choice, int threads);

struct RecoveryOptions {
  int64_t steps = 0;               // optimizer steps
  std::filesystem::path data;      // training text (optimize's --calib)
  int64_t window = 256;            // tokens per training sequence
  std::filesystem::path scratch;   // a folder for the student's starting weights (removed after)
  int threads = 0;
};

// --recover: the recipe trained toward the base model, then written into `out`. The student starts
// from the base weights with the recipe's pruning applied (those zeros held), every searched
// module computes with its chosen format fake-quantized (QAT; GPTQ's modules round to nearest
// there, as w4), and the loss is distillation from the unchanged base model on `data`. `out`
// holds the quantized result only (the trainer's fp32 copy and checkpoint are removed).
Result<train::TrainReport> write_recovered_recipe(const std::filesystem::path& model, const std::filesystem::path& out,
                                                  const Sensitivity& sens, const std::vector<Candidate>& candidates,
                                                  const std::vector<int>& choice, const RecoveryOptions& options);

}  // namespace brisk::recipe
