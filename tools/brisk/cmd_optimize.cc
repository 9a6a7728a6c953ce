// brisk optimize: a per-layer compression recipe chosen under a budget (library: src/optimize).
#include <fstream>
#include <memory>

#include "common.h"
#include "optimize/optimize.h"
#include "optimize/report_html.h"

namespace brisk::cli {

namespace {

// "+2%", "2%", "0.02" -> 0.02 (a relative perplexity increase).
Result<double> parse_relative(const std::string& text) {
  std::string t = text;
  if (!t.empty() && t.front() == '+') t.erase(0, 1);
  const bool percent = !t.empty() && t.back() == '%';
  if (percent) t.pop_back();
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (t.empty() || *end != '\0' || !(v >= 0) || !std::isfinite(v))
    return make_error("--budget-ppl '" + text + "': give the allowed perplexity increase, e.g. +2% or 0.02");
  return percent ? v / 100 : v;
}

}  // namespace

Command add_optimize(CLI::App& app) {
  struct Flags {
    std::string in, out, calib, eval, budget_ppl, budget_bytes, objective = "decode", space = "quant", report, html, eval_cmd,
        scores;
    double budget_bits = 0, target_tok_s = 0;
    int64_t calib_tokens = 512, window = 256, eval_tokens = 16384, eval_ctx = 512, recover = 0;
    int verify = 4;
    BackendOptions backend;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand(
      "optimize",
      "Choose a compression recipe per layer under a budget. Each group of linear layers that share\n"
      "an input (q/k/v, o, gate/up, down, the head) is scored once per candidate (keep and the\n"
      "--space formats) by the KL divergence it causes on --calib\n"
      "text, and costed in bytes and in matmul time measured on this machine; an exact solver\n"
      "builds the Pareto frontier, the single-technique recipes and the frontier points around the\n"
      "choice are measured for real (perplexity on --eval, decode tok/s, bytes), and the chosen\n"
      "model is written to -o. --device cuda scores, times and measures on the GPU (candidates\n"
      "are made, folders written and --recover trained on the CPU threads)");
  sub->add_option("-m,--model", f->in, "Input model folder (unquantized)")->required();
  sub->add_option("-o,--out", f->out, "Output model folder (must not exist or be empty)")->required();
  sub->add_option("--calib", f->calib, "Text the scores come from (tokenized without special tokens)")->required();
  sub->add_option("--eval", f->eval, "Text the perplexities are measured on")->required();
  auto* ppl = sub->add_option("--budget-ppl", f->budget_ppl,
                              "Allowed perplexity increase on --eval over the input model (+2%, 0.02); the\n"
                              "recipe then minimises --objective");
  auto* bits = sub->add_option("--budget-bits", f->budget_bits, "Bits per weight of the searched matrices, at most");
  auto* bytes = sub->add_option("--budget-bytes", f->budget_bytes, "Model weight bytes, at most (K/M/G suffixes)");
  auto* toks = sub->add_option("--target-tok-s", f->target_tok_s, "Decode tokens/s, at least (as predicted from the timings)");
  for (CLI::Option* a : {ppl, bits, bytes, toks})
    for (CLI::Option* b : {ppl, bits, bytes, toks})
      if (a != b) a->excludes(b);
  auto* objective_flag =
      sub->add_option("--objective", f->objective, "Under --budget-ppl: minimise decode time, prefill time or size")
          ->capture_default_str();
  sub->add_option("--space", f->space,
                  "Techniques or candidates searched, comma-separated: " + recipe::search_space_names() +
                      ",\nor names (w8,w4,nf4). w4 is RTN per group of 128; w4-gptq/w4-awq its GPTQ/AWQ codes (AWQ\n"
                      "for q/k/v and gate/up, whose scales fold into the norm before them); w8+... is w8 after Wanda\n"
                      "pruning (sparse int8 kernels); lr20/lr40 are SVD-LLM factors holding 80%/60% of the\n"
                      "parameters; kv tries the narrowest KV cache whose perplexity stays within --budget-ppl on the\n"
                      "answer (written as its default). Groups of 32 are not searched (the kernels read 128 a scale)")
      ->capture_default_str();
  sub->add_option("--calib-tokens", f->calib_tokens, "Calibration tokens scored per candidate")->capture_default_str();
  sub->add_option("--window", f->window, "Tokens per calibration forward")->capture_default_str();
  sub->add_option("--eval-tokens", f->eval_tokens, "Eval tokens scored per measured recipe (0: all)")->capture_default_str();
  sub->add_option("--eval-ctx", f->eval_ctx, "Perplexity window (as brisk perplexity --ctx)")->capture_default_str();
  sub->add_option("--verify", f->verify, "Frontier points measured around the chosen one")->capture_default_str();
  sub->add_option("--eval-cmd", f->eval_cmd,
                  "A task metric: a shell command run for every measured recipe with {model} replaced by its\n"
                  "folder; the last number it prints is recorded as eval_cmd_score (reported beside the\n"
                  "perplexity, not optimised)");
  sub->add_option("--recover", f->recover,
                  "Recovery: this many steps of quantization-aware distillation of the answer from the input\n"
                  "model on --calib text (the answer's formats fake-quantized, pruned zeros held); the trained\n"
                  "model replaces the answer when its measured perplexity is lower (0: none)")
      ->capture_default_str();
  // --device runs the scoring, the kernel timing and the measured recipes there; making
  // candidates, writing folders and --recover's training stay on the CPU threads.
  add_engine_flags(sub, f->backend);
  sub->add_option("--scores", f->scores,
                  "Keep the scores and kernel timings in this file: written as soon as they are computed, read\n"
                  "instead of computing them when it exists (a stopped run resumes, other budgets reuse one\n"
                  "scoring pass). Reused only for the same model, --calib, --space, --calib-tokens, --window and\n"
                  "--device (an error otherwise); not with GPTQ, AWQ, pruned or low-rank candidates (their inputs are\n"
                  "not kept). Under --budget-bits/--budget-bytes or --objective size the recipes measured are kept\n"
                  "too, and taken by a later run with the same --eval, --eval-tokens, --eval-ctx, --eval-cmd and threads");
  sub->add_option("--report", f->report, "Also write the whole record as JSON to this file");
  sub->add_option("--html", f->html,
                  "Also write the record as one self-contained HTML page (frontier charts, sensitivity heat map,\n"
                  "the chosen format per layer; no network needed to view it)");
  sub->add_flag("--json", f->json,
                "Print the whole record: {\"base\", \"groups\", \"frontier\", \"single_technique\", \"chosen\",\n"
                "\"rank_correlation\", ...}");
  return {sub, [f, ppl, bits, bytes, toks, objective_flag]() {
    // The side files are opened (and emptied) now: an unwritable path fails before the long run.
    for (const std::string* path : {&f->report, &f->html})
      if (!path->empty() && !std::ofstream(*path)) return fail(*path + ": cannot write");
    recipe::OptimizeOptions o;
    o.model = f->in;
    o.out = f->out;
    o.calib = f->calib;
    o.eval = f->eval;
    auto space = recipe::search_space(f->space);
    if (!space) return fail(space.error());
    o.candidates = std::move(space->candidates);
    o.kv_candidates = std::move(space->kv);
    if (ppl->count()) {
      auto v = parse_relative(f->budget_ppl);
      if (!v) return fail(v.error());
      o.budget = recipe::BudgetKind::Ppl;
      o.budget_value = v.value();
    } else if (bits->count()) {
      if (!(f->budget_bits > 0)) return fail("--budget-bits must be positive");
      o.budget = recipe::BudgetKind::Bits;
      o.budget_value = f->budget_bits;
    } else if (bytes->count()) {
      auto v = parse_byte_size(f->budget_bytes);
      if (!v) return fail(v.error());
      o.budget = recipe::BudgetKind::Bytes;
      o.budget_value = double(v.value());
    } else if (toks->count()) {
      if (!(f->target_tok_s > 0)) return fail("--target-tok-s must be positive");
      o.budget = recipe::BudgetKind::TokS;
      o.budget_value = f->target_tok_s;
    } else {
      return fail("give a budget: --budget-ppl, --budget-bits, --budget-bytes or --target-tok-s");
    }
    auto objective = recipe::parse_objective(f->objective);
    if (!objective) return fail(objective.error());
    o.objective = objective.value();
    // The other budgets minimise the predicted perplexity: an objective there would be ignored.
    if (objective_flag->count() && o.budget != recipe::BudgetKind::Ppl)
      return fail("--objective applies under --budget-ppl only (the other budgets minimise perplexity)");
    if (f->calib_tokens < 2 || f->window < 2) return fail("--calib-tokens and --window must be at least 2");
    if (f->eval_tokens < 0 || f->eval_ctx < 2 || f->verify < 0 || f->recover < 0)
      return fail("--eval-tokens must be >= 0, --eval-ctx >= 2, --verify >= 0 and --recover >= 0");
    o.sensitivity.tokens = f->calib_tokens;
    o.sensitivity.window = f->window;
    o.eval_tokens = f->eval_tokens;
    o.eval_ctx = f->eval_ctx;
    o.verify_points = f->verify;
    o.eval_cmd = f->eval_cmd;
    o.recover_steps = f->recover;
    o.backend = f->backend;
    o.scores_file = f->scores;
    std::unique_ptr<ProgressBar> bar;
    std::string stage;
    auto record = recipe::optimize(o, [&](const std::string& s, int64_t done, int64_t total) {
      if (s != stage) {
        if (bar) bar->finish();
        bar = std::make_unique<ProgressBar>("optimize: " + s);
        stage = s;
      }
      bar->update(double(done), double(total), std::to_string(done) + "/" + std::to_string(total));
    });
    if (bar) bar->finish();
    if (!record) return fail(record.error());
    const Json& r = record.value();
    if (!f->report.empty()) {
      std::ofstream out(f->report);
      out << r.dump(1) << "\n";
      if (!out) return fail(f->report + ": cannot write");
    }
    if (!f->html.empty()) {
      std::ofstream out(f->html);
      out << recipe::optimize_report_html(r);
      if (!out) return fail(f->html + ": cannot write");
    }
    if (f->json) {
      print_json(r);
      return 0;
    }
    const Json& c = r["chosen"];
    std::printf("base: ppl %.4f, %.1f MB, %.1f tok/s\n", r["base"]["ppl"].get<double>(),
                r["base"]["bytes"].get<double>() / 1e6, r["base"]["decode_tok_s"].get<double>());
    for (const Json& s : r["single_technique"])
      std::printf("all %-5s ppl %.4f (predicted %.4f), %.1f MB, %.1f tok/s\n", s["name"].get<std::string>().c_str(),
                  s["measured"]["ppl"].get<double>(), s["predicted_ppl"].get<double>(),
                  s["measured"]["bytes"].get<double>() / 1e6, s["measured"]["decode_tok_s"].get<double>());
    std::printf("chosen: ppl %.4f (predicted %.4f), %.1f MB, %.1f tok/s; %zu frontier points, rank correlation %s\n",
                c["measured"]["ppl"].get<double>(), c["predicted_ppl"].get<double>(),
                c["measured"]["bytes"].get<double>() / 1e6, c["measured"]["decode_tok_s"].get<double>(),
                r["frontier"].size(), r["rank_correlation"].is_null() ? "n/a" : std::to_string(r["rank_correlation"].get<double>()).c_str());
    if (const Json& rec = r["recovery"]; !rec.is_null())
      std::printf("recovery: %lld steps, loss %.4f -> %.4f, ppl %.4f (%s)\n", (long long)rec["steps"].get<int64_t>(),
                  rec["initial_loss"].get<double>(), rec["final_loss"].get<double>(),
                  rec["measured"]["ppl"].get<double>(), rec["used"].get<bool>() ? "used" : "not used: no lower");
    std::printf("recipe:");
    for (size_t g = 0; g < r["groups"].size(); ++g)
      std::printf(" %s=%s", r["groups"][g]["label"].get<std::string>().c_str(), c["recipe"][g].get<std::string>().c_str());
    std::printf("\nwrote %s\n", r["out"].get<std::string>().c_str());
    return 0;
  }};
}

}  // namespace brisk::cli
