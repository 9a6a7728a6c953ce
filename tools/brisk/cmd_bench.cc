// brisk bench: prefill and decode speed, with this machine's limits measured in the same run.
#include <algorithm>
#include <memory>

#include "common.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "runtime/bench.h"

namespace brisk::cli {

Command add_bench(CLI::App& app) {
  struct Flags {
    EngineOptions engine;
    BenchOptions bench;
    GrammarFlags grammar;
    std::string model;
    bool json = false, no_limits = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand(
      "bench", "Prefill and decode throughput (medians after a warm-up), weight bytes per token,\n"
               "peak RSS, and the machine's read bandwidth and multiply-add peaks for comparison");
  add_model_option(sub, f->model, "Model folder or .gguf file");
  sub->add_option("-p,--prompt-tokens", f->bench.prompt_tokens, "Prompt length for prefill")->capture_default_str();
  sub->add_option("-n,--new-tokens", f->bench.new_tokens, "Tokens decoded per repetition")->capture_default_str();
  sub->add_option("-r,--repetitions", f->bench.repetitions, "Timed repetitions (after one warm-up)")->capture_default_str();
  sub->add_option("--batch", f->bench.batch_sizes,
                  "Also decode N sequences together for each N (comma-separated), e.g. 1,8,64")
      ->delimiter(',')
      ->check(in_range(1, kMaxBatchSequences));
  add_engine_flags(sub, f->engine);
  add_parallel_flags(sub, f->engine);
  add_grammar_flags(sub, f->grammar);
  sub->add_flag("--no-limits", f->no_limits, "Skip the bandwidth and peak microbenchmarks");
  sub->add_flag("--json", f->json, "Print one JSON object");
  return {sub, [f]() {
    f->engine.model_dir = f->model;
    f->engine.context = f->bench.prompt_tokens + f->bench.new_tokens;
    // Prefill the whole prompt in one forward call (up to 2048 rows): the matrix products then
    // run at the size the bench reports.
    f->engine.max_rows = std::clamp<int64_t>(f->bench.prompt_tokens, 1, 2048);
    for (int64_t n : f->bench.batch_sizes) f->engine.max_rows = std::max(f->engine.max_rows, n);
    f->bench.measure_limits = !f->no_limits;
    f->bench.decode_graphs = f->engine.decode_graphs;
    show_load_progress(f->engine);
    auto engine = open_engine(f->engine);
    if (!engine) return fail(engine.error());
    if (!engine.value()) return 0;  // a follower rank
    auto grammar = load_grammar(f->grammar, *engine.value());
    if (!grammar) return fail(grammar.error());
    f->bench.grammar = std::move(grammar).value();
    auto result = run_bench(*engine.value(), f->bench);
    if (!result) return fail(result.error());
    const BenchResult& r = result.value();
    const double decode_gbps = double(r.weight_bytes) * r.decode_tok_s_median / 1e9;
    const double prefill_flops_per_token = double(r.prefill_flops) / double(f->bench.prompt_tokens);
    const double prefill_gflops = prefill_flops_per_token * r.prefill_tok_s_median / 1e9;
    // The multiply-add rate the kernels can reach: bf16 dot products only for --bf16-fast.
    const bool bf16 = engine.value()->model().output_head().dtype == DType::BF16 &&
                      f->engine.backend.bf16 == Bf16Precision::Fast;
    const double peak = bf16 && r.bf16_dot_peak_gflops > 0 ? r.bf16_dot_peak_gflops : r.fp32_fma_peak_gflops;
    Json out = {{"prefill_tok_s", r.prefill_tok_s_median},
                {"decode_tok_s", r.decode_tok_s_median},
                {"weight_bytes", r.weight_bytes},
                {"peak_rss_bytes", r.peak_rss_bytes},
                {"prefill_tok_s_runs", r.prefill_tok_s},
                {"decode_tok_s_runs", r.decode_tok_s},
                {"prompt_tokens", f->bench.prompt_tokens},
                {"new_tokens", f->bench.new_tokens},
                {"threads", f->engine.backend.threads > 0 ? f->engine.backend.threads : hardware_threads()},
                {"device", f->engine.backend.device},
                {"bf16_math", f->engine.backend.bf16 == Bf16Precision::Fast ? "bf16_dot" : "exact_fp32"},
                {"kv_dtype", kv_dtype_name(engine.value()->kv_dtype())},
                {"cpu_features", cpu_features_string()},
                {"decode_GBps", decode_gbps},
                {"prefill_flops_per_token", prefill_flops_per_token},
                {"prefill_gflops", prefill_gflops}};
    out["decode_graphs"] = f->engine.decode_graphs == DecodeGraphs::Auto;
    if (f->bench.grammar)  // decode was greedy within this grammar's mask
      out["constrained_by"] = f->grammar.grammar_file.empty() ? f->grammar.schema_file : f->grammar.grammar_file;
    if (!r.batch_tok_s.empty()) {
      Json batch = Json::object();
      for (auto [n, tok_s] : r.batch_tok_s) batch[std::to_string(n)] = tok_s;
      out["batch_tok_s"] = batch;
    }
    if (r.device_bytes_in_use > 0) out["gpu_bytes_in_use"] = r.device_bytes_in_use;
    if (r.read_bandwidth_gbps > 0) {
      out["read_bandwidth_GBps"] = r.read_bandwidth_gbps;
      out["fp32_fma_peak_gflops"] = r.fp32_fma_peak_gflops;
      out["bf16_dot_peak_gflops"] = r.bf16_dot_peak_gflops;
      out["decode_roofline_fraction"] = r.read_bandwidth_gbps > 0 ? decode_gbps / r.read_bandwidth_gbps : 0.0;
      out["prefill_peak_fraction"] = peak > 0 ? prefill_gflops / peak : 0.0;
      out["prefill_peak_kind"] = bf16 && r.bf16_dot_peak_gflops > 0 ? "bf16_dot" : "fp32_fma";
    }
    if (f->json) {
      print_json(out);
    } else {
      std::printf("prefill %.1f tok/s (%.1f GFLOP/s)   decode %.2f tok/s (%.2f GB/s of weights)\n",
                  r.prefill_tok_s_median, prefill_gflops, r.decode_tok_s_median, decode_gbps);
      if (r.read_bandwidth_gbps > 0)
        std::printf("machine: read %.1f GB/s, fp32 FMA %.0f GFLOP/s, bf16 dot %.0f GFLOP/s -> decode at %.0f%% of "
                    "bandwidth, prefill at %.0f%% of peak\n",
                    r.read_bandwidth_gbps, r.fp32_fma_peak_gflops, r.bf16_dot_peak_gflops,
                    100 * out["decode_roofline_fraction"].get<double>(), 100 * out["prefill_peak_fraction"].get<double>());
      std::printf("weights read per token %.1f MB, peak RSS %.1f MB\n", double(r.weight_bytes) / 1e6,
                  double(r.peak_rss_bytes) / 1e6);
      for (auto [n, tok_s] : r.batch_tok_s)
        std::printf("batch %lld: %.1f tok/s (%.1f per sequence)\n", (long long)n, tok_s, tok_s / double(n));
    }
    return 0;
  }};
}

}  // namespace brisk::cli
