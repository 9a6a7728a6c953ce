// brisk lowrank: model folder in, factored model folder out -- every decoder linear layer as two
// thin matrices (library: src/compress/lowrank.h).
#include <chrono>
#include <memory>

#include "common.h"
#include "compress/lowrank.h"
#include "formats/model_folder.h"

namespace brisk::cli {

Command add_lowrank(CLI::App& app) {
  struct Flags {
    std::string in, out, method = "svd-llm", calib;
    double rank_ratio = 0, compression = 0;
    int64_t calib_tokens = 16384;
    int threads = 0;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand(
      "lowrank",
      "Replace every decoder linear layer W [out, in] by two factors [out, r] x [r, in] (run as two\n"
      "products; embeddings, norms and lm_head stay) and write a model folder in the input's dtype:\n"
      "svd (truncated SVD of W), asvd (W scaled by input activation magnitudes) or svd-llm (W times\n"
      "the Cholesky factor of X^T X: the discarded singular values are the output error). Ranks:\n"
      "--rank-ratio R keeps R x min(out, in) components of each matrix; --compression C removes that\n"
      "fraction of the layers' parameters, each matrix keeping the same fraction of its spectrum's\n"
      "energy. A matrix whose factors would not be smaller than it stays whole. brisk runs the\n"
      "result (generate, perplexity, bench, serve); config.json's brisk_low_rank lists the ranks");
  sub->add_option("-m,--model", f->in, "Input model folder (float weights)")->required();
  sub->add_option("-o,--out", f->out, "Output folder (must not exist or be empty)")->required();
  sub->add_option("--method", f->method, "svd, asvd or svd-llm (the last two need --calib)")->capture_default_str();
  sub->add_option("--rank-ratio", f->rank_ratio, "Each matrix's rank as a fraction of min(out, in)")
      ->check(CLI::Range(0.0001, 1.0));
  sub->add_option("--compression", f->compression,
                  "Fraction of the linear layers' parameters to remove (ranks chosen from the spectra)")
      ->check(CLI::Range(0.0001, 0.9999));
  sub->add_option("--calib", f->calib, "Calibration text file (asvd, svd-llm)");
  sub->add_option("--calib-tokens", f->calib_tokens, "Calibration tokens (whole 512-token windows spread over the file)")
      ->capture_default_str()->check(CLI::Range(int64_t(1024), int64_t(1) << 30));
  sub->add_option("-t,--threads", f->threads, "CPU threads (0: all cores)")->capture_default_str();
  sub->add_flag("--json", f->json,
                "Print {\"method\", \"compression\", \"params_before\", \"params_after\", \"matrices\": {name:\n"
                "{\"rank\", \"full_rank\", \"retained_energy\"}}, \"calibration_tokens\", \"seconds\", \"out\"}");
  return {sub, [f, sub]() {
    const auto start = std::chrono::steady_clock::now();
    calib::LowRankOptions o;
    auto method = calib::parse_low_rank_method(f->method);
    if (!method) return fail(method.error());
    o.method = method.value();
    o.rank_ratio = f->rank_ratio;
    o.compression = f->compression;
    o.threads = f->threads;
    o.calibration.max_tokens = f->calib_tokens;
    if (Status st = calib::check_low_rank_options(o); !st.ok()) return fail(st.error());
    if (sub->count("--calib-tokens") && f->calib.empty())
      return fail(make_error("--calib-tokens is read only with --calib"));
    if (calib::needs_calibration(o.method) == f->calib.empty())
      return fail(make_error(f->calib.empty() ? "--method " + f->method + " needs calibration text: --calib FILE"
                                              : "--calib is only read by asvd and svd-llm"));
    if (Status st = require_empty_output(f->out); !st.ok()) return fail(st.error());
    auto tokens = read_calibration_tokens(f->in, f->calib, f->method);
    if (!tokens) return fail(tokens.error());
    ProgressBar bar("lowrank " + f->method);
    auto factored = calib::factor_with_calibration(f->in, tokens.value(), o, [&](int64_t done, int64_t total) {
      bar.update(double(done), double(total), std::to_string(done) + "/" + std::to_string(total) + " matrices");
    });
    bar.finish();
    if (!factored) return fail(factored.error());
    const calib::LowRankModel& m = factored.value();
    if (Status st = calib::write_low_rank_model(f->in, f->out, m, o.method); !st.ok()) return fail(st.error());
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double removed = 1 - double(m.params_after) / double(std::max<int64_t>(1, m.params_before));
    int64_t n_factored = 0;
    Json matrices = Json::object();
    for (const calib::FactoredMatrix& x : m.matrices) {
      n_factored += x.rank > 0;
      matrices[x.name] = {{"rank", x.rank}, {"full_rank", std::min(x.out, x.in)}, {"retained_energy", x.retained}};
    }
    if (f->json)
      print_json({{"method", f->method}, {"compression", removed}, {"params_before", m.params_before},
                  {"params_after", m.params_after}, {"matrices", matrices},
                  {"calibration_tokens", m.calibration_tokens}, {"seconds", seconds}, {"out", f->out}});
    else
      std::printf("wrote %s: %lld of %zu matrices factored (%s), %.2fM -> %.2fM parameters (%.1f%% removed), in %.1f s\n",
                  f->out.c_str(), (long long)n_factored, m.matrices.size(), f->method.c_str(),
                  double(m.params_before) / 1e6, double(m.params_after) / 1e6, 100 * removed, seconds);
    return 0;
  }};
}

}  // namespace brisk::cli
