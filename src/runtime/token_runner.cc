#include "runtime/token_runner.h"

#include <algorithm>
#include <cstring>

namespace brisk {

TokenRunner::TokenRunner(Model& model, Backend& backend, DecodeGraphs graphs)
    : model_(model), backend_(backend), graphs_(graphs),
      ids_dev_(backend.allocate(size_t(model.max_rows()))), ids_(size_t(model.max_rows())) {}

int64_t TokenRunner::key_bucket(int64_t max_keys, int64_t context) {
  int64_t bucket = 256;
  while (bucket < max_keys) bucket *= 2;
  return std::max(max_keys, std::min(bucket, context));
}

std::pair<const float*, int64_t> TokenRunner::forward(const std::vector<SequenceChunk>& chunks, KvCache& cache) {
  bool decode_step = graphs_ == DecodeGraphs::Auto && backend_.can_record() && !chunks.empty();
  int64_t max_keys = 0;
  for (const SequenceChunk& c : chunks) {
    decode_step = decode_step && c.n_tokens == 1 && c.logits == LogitRows::Last;
    max_keys = std::max(max_keys, c.first_pos + c.n_tokens);
  }
  if (!decode_step) {
    model_.prepare(chunks, cache);
    const float* logits = model_.run_prepared(cache);
    return {logits, model_.prepared_logit_rows()};
  }
  const int64_t bucket = key_bucket(max_keys, model_.context());
  model_.prepare(chunks, cache, bucket);  // uploads this step's tokens, positions, tables
  Recorded& r = recorded_[{int64_t(chunks.size()), bucket}];
  if (r.pass && r.buffers_epoch == model_.buffers_epoch() && r.cache_pool == cache.layer(0).k) {
    r.pass->replay();
    ++replays_;
    return {r.logits, int64_t(chunks.size())};
  }
  // Run the step for real first: that also grows every scratch buffer and builds every matmul
  // plan, so the recording below allocates nothing. Recording does not run the ops.
  const float* logits = model_.run_prepared(cache);
  backend_.begin_capture();
  r.logits = model_.run_prepared(cache);
  r.pass = backend_.end_capture();
  BRISK_CHECK(r.logits == logits, "TokenRunner: the recorded pass moved its logits");
  r.buffers_epoch = model_.buffers_epoch();
  r.cache_pool = cache.layer(0).k;
  ++recordings_made_;
  return {logits, int64_t(chunks.size())};
}

const int32_t* TokenRunner::ids_to_host(int64_t rows) {
  if (rows > 0) backend_.copy_to_host(reinterpret_cast<float*>(ids_.data()), ids_dev_.data(), size_t(rows));
  return ids_.data();
}

const int32_t* TokenRunner::run_greedy(const std::vector<SequenceChunk>& chunks, KvCache& cache) {
  const auto [logits, rows] = forward(chunks, cache);
  if (rows > 0)
    backend_.argmax_rows(logits, rows, model_.config().vocab_size, reinterpret_cast<int32_t*>(ids_dev_.data()));
  return ids_to_host(rows);
}

void TokenRunner::upload_sampling(const std::vector<const Sampler*>& samplers) {
  static_assert(sizeof(SampleRowParams) % sizeof(float) == 0 && sizeof(TokenCount) % sizeof(float) == 0);
  // One upload: the rows' parameters, then their penalized tokens, then the constrained rows' masks.
  size_t n_counts = 0, n_words = 0;
  for (const Sampler* s : samplers) {
    n_counts += s->counts().size();
    if (s->constrained()) n_words += size_t(s->allowed_words());
  }
  const size_t params_bytes = samplers.size() * sizeof(SampleRowParams);
  const size_t counts_bytes = n_counts * sizeof(TokenCount);
  const size_t floats = (params_bytes + counts_bytes + n_words * sizeof(uint32_t)) / sizeof(float);
  sample_args_host_.resize(floats);
  char* base = reinterpret_cast<char*>(sample_args_host_.data());
  auto* params = reinterpret_cast<SampleRowParams*>(base);
  auto* counts = reinterpret_cast<TokenCount*>(base + params_bytes);
  auto* words = reinterpret_cast<uint32_t*>(base + params_bytes + counts_bytes);
  size_t first = 0, first_word = 0;
  for (size_t i = 0; i < samplers.size(); ++i) {
    BRISK_CHECK(first < size_t(INT32_MAX) && first_word < size_t(INT32_MAX), "TokenRunner: too much sampling state in one step");
    const Sampler& s = *samplers[i];
    params[i] = s.row_params(int32_t(first), s.constrained() ? int32_t(first_word) : -1);
    std::copy(s.counts().begin(), s.counts().end(), counts + first);
    first += s.counts().size();
    if (s.constrained()) {
      s.write_allowed(words + first_word);
      first_word += size_t(s.allowed_words());
    }
  }
  sample_counts_ = n_counts;
  if (sample_args_.size() < floats) sample_args_ = backend_.allocate(std::max(floats, 2 * sample_args_.size()));
  backend_.copy_to_device(sample_args_.data(), sample_args_host_.data(), floats);
}

const int32_t* TokenRunner::run_sampled(const std::vector<SequenceChunk>& chunks, KvCache& cache,
                                        const std::vector<const Sampler*>& samplers) {
  // The pass first: on a GPU it runs while the host computes the grammar masks.
  const auto [logits, rows] = forward(chunks, cache);
  upload_sampling(samplers);
  BRISK_CHECK(rows == int64_t(samplers.size()), "TokenRunner::run_sampled: one sampler per logits row");
  if (rows > 0) {
    const auto* params = reinterpret_cast<const SampleRowParams*>(sample_args_.data());
    const auto* counts = reinterpret_cast<const TokenCount*>(params + rows);
    const auto* allowed = reinterpret_cast<const uint32_t*>(counts + sample_counts_);
    // The pass's logits buffer is scratch until the next pass: the mask and penalties edit it.
    backend_.sample_rows(const_cast<float*>(logits), rows, model_.config().vocab_size, params, counts, allowed,
                         reinterpret_cast<int32_t*>(ids_dev_.data()));
  }
  return ids_to_host(rows);
}

}  // namespace brisk
