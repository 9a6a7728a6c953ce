// Forward passes whose logits rows become greedy token ids on the device: only the ids travel back
// to the host ([rows] ints instead of [rows, vocab] floats). On a backend that can record (CUDA),
// decode steps -- every chunk one token -- are recorded once per (batch size, key bucket) and
// replayed afterwards: one graph launch instead of ~400 kernel launches per step. Graph capture
// lives here, in runtime/, never in models/ (GUIDE rule 1).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "models/model.h"

namespace brisk {

enum class DecodeGraphs { Auto, Off };  // Off: launch every op each step (for comparisons)

class GreedyRunner {
 public:
  GreedyRunner(Model& model, Backend& backend, DecodeGraphs graphs = DecodeGraphs::Auto);
  GreedyRunner(const GreedyRunner&) = delete;
  GreedyRunner& operator=(const GreedyRunner&) = delete;

  // One forward pass over the chunks (see Model::forward); returns the argmax id of each logits row
  // the chunks ask for, in order (valid until the next call).
  const int32_t* run(const std::vector<SequenceChunk>& chunks, KvCache& cache);

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
  };
  // Enqueues the prepared pass and the argmax into ids_dev_; returns the rows.
  int64_t enqueue(KvCache& cache);

  Model& model_;
  Backend& backend_;
  DecodeGraphs graphs_;
  Buffer ids_dev_;               // [max_rows] int32 ids, bit for bit in a float buffer
  std::vector<int32_t> ids_;     // host copy
  std::map<std::pair<int64_t, int64_t>, Recorded> recorded_;  // (sequences, key bucket)
  int64_t recordings_made_ = 0, replays_ = 0;
};

}  // namespace brisk
