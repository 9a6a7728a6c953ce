// `brisk bench`: prefill and decode throughput (medians after a warm-up) next to this machine's
// physical limits measured in the same run (memory read bandwidth, multiply-add peaks).
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "runtime/engine.h"

namespace brisk {

struct BenchOptions {
  int64_t prompt_tokens = 512;
  int64_t new_tokens = 128;
  int64_t repetitions = 5;
  bool measure_limits = true;  // run the bandwidth and peak microbenchmarks too
  // Batched decode: for each N, N sequences (each its own prompt and block table) decode
  // new_tokens steps together after their prefill; greedy ids chosen on the device.
  std::vector<int64_t> batch_sizes;
  DecodeGraphs decode_graphs = DecodeGraphs::Auto;
  // Decode under this grammar (greedy within its mask; a sequence that completes a sentence starts
  // the grammar over), to time constrained decoding; null: plain greedy ids from the device.
  std::shared_ptr<grammar::ConstrainedGrammar> grammar;
};

struct BenchResult {
  std::vector<double> prefill_tok_s, decode_tok_s;  // one entry per repetition
  double prefill_tok_s_median = 0, decode_tok_s_median = 0;
  uint64_t weight_bytes = 0;       // weights read per decoded token
  // Floating-point operations of one prefill as it runs: every layer's products and attention
  // for each prompt token, the head only for each chunk's last row (the one whose logits count).
  uint64_t prefill_flops = 0;
  uint64_t peak_rss_bytes = 0;
  double read_bandwidth_gbps = 0;  // 0 when not measured
  double fp32_fma_peak_gflops = 0;
  double bf16_dot_peak_gflops = 0;
  std::vector<std::pair<int64_t, double>> batch_tok_s;  // (N, generated tokens/s of all N)
  uint64_t device_bytes_in_use = 0;  // GPU memory in use after the (largest) batch (0 on the CPU)
};

Result<BenchResult> run_bench(Engine& engine, const BenchOptions& options);
double median(std::vector<double> values);
uint64_t peak_rss_bytes();

}  // namespace brisk
