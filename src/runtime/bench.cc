#include "runtime/bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/roofline.h"

namespace brisk {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

uint64_t peak_rss_bytes() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return uint64_t(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

Result<BenchResult> run_bench(Engine& engine, const BenchOptions& o) {
  if (o.prompt_tokens < 1 || o.new_tokens < 1 || o.repetitions < 1)
    return make_error("bench: -p, -n and -r must be positive");
  if (o.prompt_tokens + o.new_tokens > engine.context())
    return make_error("bench: -p " + std::to_string(o.prompt_tokens) + " + -n " + std::to_string(o.new_tokens) +
                      " exceeds the context of " + std::to_string(engine.context()) + " (raise --ctx)");
  Model& model = engine.model();
  const int64_t vocab = model.config().vocab_size;
  std::mt19937 rng(1234);
  std::vector<int32_t> prompt(size_t(o.prompt_tokens));
  for (auto& t : prompt) t = int32_t(rng() % uint32_t(vocab));

  using clock = std::chrono::steady_clock;
  auto seconds_since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  BenchResult r;
  // Repetition 0 is the warm-up (page faults on mapped weights, caches, thread start).
  for (int64_t rep = 0; rep <= o.repetitions; ++rep) {
    auto t0 = clock::now();
    const float* logits = engine.prefill(prompt);
    double prefill_s = seconds_since(t0);
    int32_t token = int32_t(std::max_element(logits, logits + vocab) - logits);
    auto t1 = clock::now();
    for (int64_t i = 0; i < o.new_tokens; ++i) {
      logits = engine.decode_step(token, o.prompt_tokens + i);
      token = int32_t(std::max_element(logits, logits + vocab) - logits);
    }
    double decode_s = seconds_since(t1);
    if (rep == 0) continue;
    r.prefill_tok_s.push_back(double(o.prompt_tokens) / prefill_s);
    r.decode_tok_s.push_back(double(o.new_tokens) / decode_s);
  }
  r.prefill_tok_s_median = median(r.prefill_tok_s);
  r.decode_tok_s_median = median(r.decode_tok_s);
  const Model::TokenCost cost = model.cost_per_token();
  r.weight_bytes = cost.weight_bytes;
  r.matmul_flops_per_token = 2 * cost.multiply_adds;
  r.peak_rss_bytes = peak_rss_bytes();
  auto* cpu = dynamic_cast<CpuBackend*>(&engine.backend());
  if (o.measure_limits && cpu) {  // the CPU's limits; a GPU's are measured by bench/ scripts
    ThreadPool& pool = cpu->pool();
    r.read_bandwidth_gbps = cpu::measure_read_bandwidth_gbps(pool);
    r.fp32_fma_peak_gflops = cpu::measure_fp32_fma_peak_gflops(pool);
    r.bf16_dot_peak_gflops = cpu::measure_bf16_dot_peak_gflops(pool);
  }
  return r;
}

}  // namespace brisk
