// Forward passes whose logits rows become token ids on the device: only the ids travel back to
// the host ([rows] ints instead of [rows, vocab] floats). Greedy rows take the argmax
// (Backend::argmax_rows); sampled rows are drawn by Backend::sample_rows from the parameters and
// penalty counts of each row's Sampler, uploaded in one small copy per step. On a backend that
// can record (CUDA), decode steps -- every chunk one token -- are recorded once per (batch size,
// key bucket) and replayed afterwards: one graph launch instead of ~400 kernel launches per step;
// the token pick runs after the replay, so one recording serves greedy and sampled steps. Graph
// capture lives here, in runtime/, never in models/ (GUIDE rule 1).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "models/model.h"
#include "runtime/sampler.h"

namespace brisk {

enum class DecodeGraphs { Auto, Off };  // Off: launch every op each step (for comparisons)

class TokenRunner {
 public:
  TokenRunner(Model& model, Backend& backend, DecodeGraphs graphs = DecodeGraphs::Auto);
  TokenRunner(const TokenRunner&) = delete;
  TokenRunner& operator=(const TokenRunner&) = delete;

  // One forward pass over the chunks (see Model::forward); returns the argmax id of each logits row
  // the chunks ask for, in order (valid until the next call).
  const int32_t* run_greedy(const std::vector<SequenceChunk>& chunks, KvCache& cache);
  // The same pass with each logits row drawn by its sampler's parameters (samplers[i] for the
  // i-th row the chunks ask for). The samplers are not advanced: the caller accepts the ids.
  const int32_t* run_sampled(const std::vector<SequenceChunk>& chunks, KvCache& cache,
                             const std::vector<const Sampler*>& samplers);

  int64_t recordings_made() const { return recordings_made_; }  // for tests and benchmarks
  int64_t replays() const { return replays_; }

  // Attention in a recorded step is sized for this many keys per sequence: the batch's most keys
  // rounded up to a power of two (at least 256), at most the model's context. Few recordings
  // per batch size, and short sequences do not pay for the longest context's key splits.
  static int64_t key_bucket(int64_t max_keys, int64_t context);

 private:
  struct Recorded {
    std::unique_ptr<Backend::Recording> pass;
    uint64_t buffers_epoch = 0;         // the model's buffers it names
    const void* cache_pool = nullptr;  // and the cache (layer 0's keys stand for it)
    const float* logits = nullptr;      // where the replayed pass leaves its logits rows
  };
  // Runs (or replays) the pass; returns its logits rows in backend memory and their count.
  std::pair<const float*, int64_t> forward(const std::vector<SequenceChunk>& chunks, KvCache& cache);
  // Packs the samplers' rows, penalty counts and masks and uploads them into sample_args_.
  void upload_sampling(const std::vector<const Sampler*>& samplers);
  const int32_t* ids_to_host(int64_t rows);

  Model& model_;
  Backend& backend_;
  DecodeGraphs graphs_;
  Buffer ids_dev_;               // [max_rows] int32 ids, bit for bit in a float buffer
  std::vector<int32_t> ids_;     // host copy
  // Sampled steps: [rows] SampleRowParams, then sample_counts_ TokenCount entries, then the
  // constrained rows' allowed masks, bit for bit in floats.
  Buffer sample_args_;
  size_t sample_counts_ = 0;
  std::vector<float> sample_args_host_;
  std::map<std::pair<int64_t, int64_t>, Recorded> recorded_;  // (sequences, key bucket)
  int64_t recordings_made_ = 0, replays_ = 0;
};

}  // namespace brisk
