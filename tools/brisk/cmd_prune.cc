// brisk prune: model folder in, pruned model folder out -- unstructured or N:M zeros in every
// decoder linear layer (library: src/compress/prune.h).
#include <chrono>
#include <memory>

#include "common.h"
#include "compress/prune.h"
#include "compress/prune_structured.h"
#include "formats/model_folder.h"

namespace brisk::cli {

Command add_prune(CLI::App& app) {
  struct Flags {
    std::string in, out, method = "magnitude", pattern, scope = "layer", calib, structured, storage = "dense";
    double sparsity = 0.5, ratio = 0.25;
    int64_t calib_tokens = 16384;
    uint64_t seed = 0;
    int threads = 0;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand(
      "prune",
      "Set weights of every decoder linear layer to zero (embeddings, norms and lm_head stay) and write\n"
      "a model folder in the input's dtype: magnitude (smallest |w|), random, wanda (|w| x input\n"
      "norm, per output row) or sparsegpt (second-order, the kept weights updated to compensate);\n"
      "--sparsity S unstructured, or --pattern N:M (at most N non-zeros in every M inputs: 2:4 for\n"
      "sparse tensor cores). Prune the float model, then quantize the pruned one.\n"
      "--structured neurons|heads|layers|hidden --ratio R instead removes that fraction of every\n"
      "layer's MLP channels or key-value head groups, of the layers (by block influence: needs\n"
      "--calib), or of the model width (scored by activation with --calib, else by weight norms),\n"
      "and writes a smaller model; fine-tune it after (brisk train --teacher)");
  sub->add_option("-m,--model", f->in, "Input model folder (float weights)")->required();
  sub->add_option("-o,--out", f->out, "Output folder (must not exist or be empty)")->required();
  sub->add_option("--method", f->method, "magnitude, random, wanda or sparsegpt (the last two need --calib)")
      ->capture_default_str();
  sub->add_option("--sparsity", f->sparsity, "Fraction of each matrix's weights set to zero (unstructured)")
      ->capture_default_str()->check(CLI::Range(0.0, 0.999));
  sub->add_option("--pattern", f->pattern, "N:M sparsity instead of --sparsity (e.g. 2:4, 4:8)");
  sub->add_option("--scope", f->scope,
                  "layer: the sparsity in every matrix (wanda: every output row); global: over all matrices\n"
                  "together (magnitude, random)")
      ->capture_default_str();
  sub->add_option("--structured", f->structured,
                  "neurons (MLP channels), heads (kv heads with their query heads), layers (whole decoder\n"
                  "layers) or hidden (model-width channels): remove whole units (--ratio)");
  sub->add_option("--ratio", f->ratio, "--structured: the fraction of the units removed (neurons, heads: of each layer's)")
      ->capture_default_str()->check(CLI::Range(0.01, 0.99));
  sub->add_option("--calib", f->calib, "Calibration text file (wanda, sparsegpt; --structured: activation scores)");
  sub->add_option("--calib-tokens", f->calib_tokens, "Calibration tokens (whole 512-token windows spread over the file)")
      ->capture_default_str()->check(CLI::Range(int64_t(1024), int64_t(1) << 30));
  sub->add_option("--seed", f->seed, "Seed of --method random")->capture_default_str();
  sub->add_option("--storage", f->storage,
                  "dense (zeros stored), sparse-bitmask (compressed-tensors: non-zeros + a bitmask) or\n"
                  "sparse-24-bitmask (2:4 patterns); brisk and vLLM read all three")
      ->capture_default_str();
  sub->add_option("-t,--threads", f->threads, "CPU threads (0: all cores)")->capture_default_str();
  sub->add_flag("--json", f->json,
                "Print {\"method\", \"pattern\", \"sparsity\", \"matrices\", \"calibration_tokens\", \"seconds\", \"out\"}\n"
                "(--structured: {\"structured\", \"units_before\", \"units_after\", \"layers\", \"params_before\",\n"
                "\"params_after\", \"calibration_tokens\", \"seconds\", \"out\"}, and for layers \"removed_layers\" and\n"
                "\"layer_scores\" (each input layer's block influence))");
  return {sub, [f, sub]() {
    const auto start = std::chrono::steady_clock::now();
    if (sub->count("--calib-tokens") && f->calib.empty())
      return fail(make_error("--calib-tokens is read only with --calib"));
    if (!f->structured.empty()) {
      auto unit = calib::parse_structured_unit(f->structured);
      if (!unit) return fail(unit.error());
      for (const char* other : {"--method", "--sparsity", "--pattern", "--scope", "--seed", "--storage"})
        if (sub->count(other)) return fail(make_error(std::string(other) + " does not apply to --structured"));
      auto tokens = read_calibration_tokens(f->in, f->calib);
      if (!tokens) return fail(tokens.error());
      calib::StructuredPruneOptions o;
      o.unit = unit.value();
      o.ratio = f->ratio;
      o.threads = f->threads;
      o.calibration.max_tokens = f->calib_tokens;
      auto report = calib::prune_structured(f->in, f->out, tokens.value(), o);
      if (!report) return fail(report.error());
      const calib::StructuredPruneReport& r = report.value();
      const char* what = calib::structured_unit_counted(o.unit);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (f->json) {
        Json j = {{"structured", f->structured}, {"units_before", r.units_before}, {"units_after", r.units_after},
                  {"layers", r.layers}, {"params_before", r.params_before}, {"params_after", r.params_after},
                  {"calibration_tokens", r.calibration_tokens}, {"seconds", seconds}, {"out", f->out}};
        if (o.unit == calib::StructuredUnit::Layers) {
          j["removed_layers"] = r.removed_layers;
          j["layer_scores"] = r.layer_scores;
        }
        print_json(j);
      } else {
        std::printf("wrote %s: %s %lld -> %lld in %lld layers, %.2fM -> %.2fM parameters, in %.1f s\n",
                    f->out.c_str(), what, (long long)r.units_before, (long long)r.units_after, (long long)r.layers,
                    double(r.params_before) / 1e6, double(r.params_after) / 1e6, seconds);
        if (!r.removed_layers.empty()) {
          std::printf("removed layers");
          for (int64_t l : r.removed_layers) std::printf(" %lld", (long long)l);
          std::printf("\n");
        }
      }
      return 0;
    }
    if (sub->count("--ratio")) return fail(make_error("--ratio is read only with --structured"));
    std::optional<SparseFormat> storage;
    for (SparseFormat format : {SparseFormat::Bitmask, SparseFormat::Bitmask24})
      if (f->storage == sparse_format_name(format)) storage = format;
    if (!storage && f->storage != "dense")
      return fail(make_error("--storage must be dense, sparse-bitmask or sparse-24-bitmask"));
    if (storage == SparseFormat::Bitmask24 && f->pattern != "2:4")
      return fail(make_error("--storage sparse-24-bitmask stores --pattern 2:4 models"));
    calib::PruneOptions o;
    auto method = calib::parse_prune_method(f->method);
    if (!method) return fail(method.error());
    o.method = method.value();
    if (!f->pattern.empty()) {
      if (sub->count("--sparsity")) return fail(make_error("give --sparsity or --pattern, not both"));
      auto pattern = calib::parse_sparsity_pattern(f->pattern);
      if (!pattern) return fail(pattern.error());
      o.pattern = pattern.value();
    }
    if (f->scope != "layer" && f->scope != "global") return fail(make_error("--scope must be layer or global"));
    o.scope = f->scope == "global" ? calib::PruneScope::Global : calib::PruneScope::Layer;
    o.sparsity = f->sparsity;
    o.seed = f->seed;
    o.threads = f->threads;
    o.calibration.max_tokens = f->calib_tokens;
    if (Status st = calib::check_prune_options(o); !st.ok()) return fail(st.error());
    if (calib::needs_calibration(o.method) == f->calib.empty())
      return fail(make_error(f->calib.empty() ? "--method " + f->method + " needs calibration text: --calib FILE"
                                              : "--calib is only read by wanda and sparsegpt"));
    if (Status st = require_empty_output(f->out); !st.ok()) return fail(st.error());
    if (sub->count("--seed") && o.method != calib::PruneMethod::Random)
      return fail(make_error("--seed is read only by --method random"));
    auto tokens = read_calibration_tokens(f->in, f->calib, f->method);
    if (!tokens) return fail(tokens.error());
    ProgressBar bar("prune " + f->method);
    auto pruned = calib::prune_with_calibration(f->in, tokens.value(), o, [&](int64_t done, int64_t total) {
      bar.update(double(done), double(total), std::to_string(done) + "/" + std::to_string(total) + " layers");
    });
    bar.finish();
    if (!pruned) return fail(pruned.error());
    if (Status st = calib::write_pruned_model(f->in, f->out, pruned.value(), storage); !st.ok()) return fail(st.error());
    double zeros = 0, total = 0;
    Json matrices = Json::object();
    for (const auto& [name, s] : pruned->sparsity) {
      const double n = double(pruned->weights.at(name).size());
      zeros += s * n, total += n;
      matrices[name] = s;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const std::string what = f->pattern.empty() ? std::to_string(f->sparsity) : f->pattern;
    if (f->json) {
      print_json({{"method", f->method}, {"pattern", f->pattern.empty() ? Json(nullptr) : Json(f->pattern)},
                  {"sparsity", total > 0 ? zeros / total : 0.0}, {"matrices", matrices},
                  {"calibration_tokens", pruned->calibration_tokens}, {"seconds", seconds}, {"out", f->out}});
    } else {
      std::printf("wrote %s: %zu matrices pruned (%s, %s), %.1f%% of their weights zero, in %.1f s\n", f->out.c_str(),
                  pruned->sparsity.size(), f->method.c_str(), what.c_str(), total > 0 ? 100.0 * zeros / total : 0.0,
                  seconds);
    }
    return 0;
  }};
}

}  // namespace brisk::cli
