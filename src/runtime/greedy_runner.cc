#include "runtime/greedy_runner.h"

#include <algorithm>

namespace brisk {

GreedyRunner::GreedyRunner(Model& model, Backend& backend, DecodeGraphs graphs)
    : model_(model), backend_(backend), graphs_(graphs),
      ids_dev_(backend.allocate(size_t(model.max_rows()))), ids_(size_t(model.max_rows())) {}

int64_t GreedyRunner::key_bucket(int64_t max_keys, int64_t context) {
  int64_t bucket = 256;
  while (bucket < max_keys) bucket *= 2;
  return std::max(max_keys, std::min(bucket, context));
}

int64_t GreedyRunner::enqueue(KvCache& cache) {
  const float* logits = model_.run_prepared(cache);
  const int64_t rows = model_.prepared_logit_rows();
  if (rows > 0)
    backend_.argmax_rows(logits, rows, model_.config().vocab_size, reinterpret_cast<int32_t*>(ids_dev_.data()));
  return rows;
}

const int32_t* GreedyRunner::run(const std::vector<SequenceChunk>& chunks, KvCache& cache) {
  bool decode_step = graphs_ == DecodeGraphs::Auto && backend_.can_record() && !chunks.empty();
  int64_t max_keys = 0;
  for (const SequenceChunk& c : chunks) {
    decode_step = decode_step && c.n_tokens == 1 && c.logits == LogitRows::Last;
    max_keys = std::max(max_keys, c.first_pos + c.n_tokens);
  }
  int64_t rows = 0;
  if (!decode_step) {
    model_.prepare(chunks, cache);
    rows = enqueue(cache);
  } else {
    const int64_t bucket = key_bucket(max_keys, model_.context());
    model_.prepare(chunks, cache, bucket);  // uploads this step's tokens, positions, tables
    Recorded& r = recorded_[{int64_t(chunks.size()), bucket}];
    if (r.pass && r.buffers_epoch == model_.buffers_epoch() && r.cache_pool == cache.layer(0).k) {
      r.pass->replay();
      rows = int64_t(chunks.size());
      ++replays_;
    } else {
      // Run the step for real first: that also grows every scratch buffer and builds every
      // matmul plan, so the recording below allocates nothing. Recording does not run the ops.
      rows = enqueue(cache);
      backend_.begin_capture();
      enqueue(cache);
      r.pass = backend_.end_capture();
      r.buffers_epoch = model_.buffers_epoch();
      r.cache_pool = cache.layer(0).k;
      ++recordings_made_;
    }
  }
  if (rows > 0) backend_.copy_to_host(reinterpret_cast<float*>(ids_.data()), ids_dev_.data(), size_t(rows));
  return ids_.data();
}

}  // namespace brisk
