#include "runtime/bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/roofline.h"
#ifdef BRISK_HAVE_CUDA
#include "backends/cuda/cuda_backend.h"
#endif

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

namespace {

using bench_clock = std::chrono::steady_clock;
double seconds_since(bench_clock::time_point t) {
  return std::chrono::duration<double>(bench_clock::now() - t).count();
}

// The next token of each sequence of a step: the device's argmax, or with a grammar a greedy draw
// within each sequence's mask (Backend::sample_rows), the way a constrained request decodes.
class StepPicker {
 public:
  StepPicker(const BenchOptions& o, int64_t n_seqs, int64_t vocab) : grammar_(o.grammar), vocab_(vocab) {
    for (int64_t s = 0; grammar_ && s < n_seqs; ++s) samplers_.push_back(fresh_sampler());
  }

  // chunks[i] belongs to sequence first_seq + i.
  const int32_t* run(TokenRunner& runner, const std::vector<SequenceChunk>& chunks, int64_t first_seq, KvCache& cache) {
    if (!grammar_) return runner.run_greedy(chunks, cache);
    std::vector<const Sampler*> rows;
    for (size_t i = 0; i < chunks.size(); ++i) rows.push_back(samplers_[size_t(first_seq) + i].get());
    const int32_t* ids = runner.run_sampled(chunks, cache, rows);
    for (size_t i = 0; i < chunks.size(); ++i) {
      std::unique_ptr<Sampler>& sampler = samplers_[size_t(first_seq) + i];
      sampler->accept(ids[i]);
      if (sampler->grammar_progress() == GrammarProgress::Complete) sampler = fresh_sampler();
    }
    return ids;
  }

 private:
  std::unique_ptr<Sampler> fresh_sampler() const {
    SamplingParams p;
    p.temperature = 0.0f;
    p.grammar = grammar_;
    return std::make_unique<Sampler>(p, vocab_);
  }
  std::shared_ptr<grammar::ConstrainedGrammar> grammar_;
  int64_t vocab_;
  std::vector<std::unique_ptr<Sampler>> samplers_;
};

// Median generated tokens/s of N sequences decoding together: each has its own random prompt and
// its own block table in a cache sized for all N; prompts are prefilled (untimed) in as few
// forward calls as max_rows allows, then every step feeds each sequence its last greedy token.
Result<double> batched_decode_tok_s(Engine& engine, const BenchOptions& o, int64_t n_seqs, KvCache& cache,
                                    TokenRunner& runner) {
  Model& model = engine.model();
  const int64_t per_seq = KvCache::blocks_for(o.prompt_tokens + o.new_tokens);
  std::mt19937 rng(uint32_t(77 + n_seqs));
  std::vector<std::vector<int32_t>> tokens(static_cast<size_t>(n_seqs)), tables(static_cast<size_t>(n_seqs));
  for (int64_t s = 0; s < n_seqs; ++s)
    for (int64_t b = 0; b < per_seq; ++b) tables[size_t(s)].push_back(int32_t(s * per_seq + b));
  std::vector<double> runs;
  std::vector<SequenceChunk> chunks;
  StepPicker picker(o, n_seqs, model.config().vocab_size);
  for (int64_t rep = 0; rep <= o.repetitions; ++rep) {  // rep 0 warms up (and records graphs)
    for (auto& t : tokens) {
      t.resize(size_t(o.prompt_tokens));
      for (auto& id : t) id = int32_t(rng() % uint32_t(model.config().vocab_size));
    }
    const int64_t per_call = std::max<int64_t>(1, model.max_rows() / o.prompt_tokens);
    for (int64_t first = 0; first < n_seqs; first += per_call) {
      chunks.clear();
      for (int64_t s = first; s < std::min(n_seqs, first + per_call); ++s)
        chunks.push_back({tokens[size_t(s)].data(), o.prompt_tokens, 0, tables[size_t(s)].data(), per_seq,
                          LogitRows::Last});
      const int32_t* ids = picker.run(runner, chunks, first, cache);
      for (size_t i = 0; i < chunks.size(); ++i) tokens[size_t(first) + i].push_back(ids[i]);
    }
    const auto t0 = bench_clock::now();
    for (int64_t step = 1; step < o.new_tokens; ++step) {
      chunks.clear();
      for (int64_t s = 0; s < n_seqs; ++s) {
        const auto& t = tokens[size_t(s)];
        chunks.push_back({&t.back(), 1, int64_t(t.size()) - 1, tables[size_t(s)].data(), per_seq, LogitRows::Last});
      }
      const int32_t* ids = picker.run(runner, chunks, 0, cache);
      for (int64_t s = 0; s < n_seqs; ++s) tokens[size_t(s)].push_back(ids[s]);
    }
    if (rep > 0) runs.push_back(double(n_seqs * (o.new_tokens - 1)) / seconds_since(t0));
  }
  return median(runs);
}

uint64_t device_bytes_in_use(Backend& backend) {
#ifdef BRISK_HAVE_CUDA
  if (auto* cuda = dynamic_cast<CudaBackend*>(&backend)) return cuda->memory_in_use();
#endif
  return 0;
}

}  // namespace

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

  for (int64_t n : o.batch_sizes) {
    if (n < 1 || n > model.max_rows())
      return make_error("bench: --batch " + std::to_string(n) + " must be within 1.." + std::to_string(model.max_rows()));
  }
  BenchResult r;
  // The engine's cache as one sequence; greedy ids come from the device, and decode steps replay
  // recorded graphs where the backend records (the engine's runner, as generate uses it).
  std::vector<int32_t> table(size_t(engine.cache().n_blocks()));
  for (size_t b = 0; b < table.size(); ++b) table[b] = int32_t(b);
  TokenRunner runner(model, engine.backend(), o.decode_graphs);
  StepPicker picker(o, 1, vocab);
  auto step = [&](const int32_t* tokens, int64_t n, int64_t first_pos) {
    return picker.run(runner, {{tokens, n, first_pos, table.data(), int64_t(table.size()), LogitRows::Last}}, 0,
                      engine.cache())[0];
  };
  // Repetition 0 is the warm-up (page faults on mapped weights, caches, thread start, graphs).
  for (int64_t rep = 0; rep <= o.repetitions; ++rep) {
    auto t0 = bench_clock::now();
    // Prefill in chunks of max_rows; only the last chunk's token matters.
    int32_t token = 0;
    for (int64_t start = 0; start < o.prompt_tokens; start += model.max_rows())
      token = step(prompt.data() + start, std::min(model.max_rows(), o.prompt_tokens - start), start);
    double prefill_s = seconds_since(t0);
    auto t1 = bench_clock::now();
    for (int64_t i = 0; i < o.new_tokens; ++i) token = step(&token, 1, o.prompt_tokens + i);
    double decode_s = seconds_since(t1);
    if (rep == 0) continue;
    r.prefill_tok_s.push_back(double(o.prompt_tokens) / prefill_s);
    r.decode_tok_s.push_back(double(o.new_tokens) / decode_s);
  }
  if (!o.batch_sizes.empty()) {
    const ModelConfig& c = model.config();
    const int64_t most = *std::max_element(o.batch_sizes.begin(), o.batch_sizes.end());
    BRISK_ASSIGN(cache, KvCache::create(engine.backend(), c.n_layers,
                                        most * KvCache::blocks_for(o.prompt_tokens + o.new_tokens),
                                        c.n_kv_heads, c.head_dim, engine.cache().dtype()));
    TokenRunner batch_runner(model, engine.backend(), o.decode_graphs);
    for (int64_t n : o.batch_sizes) {
      BRISK_ASSIGN(tok_s, batched_decode_tok_s(engine, o, n, cache, batch_runner));
      r.batch_tok_s.push_back({n, tok_s});
    }
    r.device_bytes_in_use = device_bytes_in_use(engine.backend());  // while the batch cache lives
  }
  if (r.device_bytes_in_use == 0) r.device_bytes_in_use = device_bytes_in_use(engine.backend());
  r.prefill_tok_s_median = median(r.prefill_tok_s);
  r.decode_tok_s_median = median(r.decode_tok_s);
  const Model::TokenCost cost = model.cost_per_token();
  r.weight_bytes = cost.weight_bytes;
  for (int64_t start = 0; start < o.prompt_tokens; start += model.max_rows()) {
    const int64_t n = std::min(model.max_rows(), o.prompt_tokens - start);
    r.prefill_flops += 2 * (uint64_t(n) * (cost.multiply_adds - cost.head_multiply_adds) +
                            cost.head_multiply_adds + model.attention_multiply_adds(start, n));
  }
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
