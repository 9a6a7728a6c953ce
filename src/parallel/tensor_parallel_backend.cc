#include "parallel/tensor_parallel_backend.h"

#include <cstring>

#include "models/tensor_parallel.h"

namespace brisk {

void TensorParallelBackend::connect(Model& model) {
  const ModelConfig& c = model.config();
  vocab_ = c.vocab_size;
  vocab_begin_ = c.vocab_begin;
  vocab_rows_ = c.vocab_rows();
  model.visit_tensors([&](const TensorSpec& spec, Tensor& slot) {
    if (slot.empty()) return;
    if (spec.split() == SplitAxis::Rows) reduced_.insert(slot.data);
    if (vocab_rows_ < vocab_ && splits_vocabulary(spec.role))
      vocabulary_.insert(slot.data);
  });
}

void TensorParallelBackend::matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y) {
  if (!vocabulary_.count(w.data)) {
    inner().matmul(x, m, k, w, bias, y);
    if (reduced_.count(w.data)) comm_->all_reduce_sum(y, m * w.dim(0));
    return;
  }
  // This rank's [m, rows] logits, padded to the largest share so every rank sends as much (the
  // padding is never read); rank q's block of the gathered buffer is its [m, rows_q], placed at
  // its columns of y [m, vocab].
  const int64_t ranks = comm_->size(), most = vocabulary_shard(vocab_, {0, ranks}).rows();
  partial_.resize(size_t(m * most));
  inner().matmul(x, m, k, w, bias, partial_.data());
  gathered_.resize(size_t(ranks * m * most));
  comm_->all_gather(partial_.data(), m * most, gathered_.data());
  for (int64_t q = 0; q < ranks; ++q) {
    const VocabularyShard shard = vocabulary_shard(vocab_, {q, ranks});
    const float* block = gathered_.data() + q * m * most;
    for (int64_t r = 0; r < m; ++r)
      std::memcpy(y + r * vocab_ + shard.begin, block + r * shard.rows(), size_t(shard.rows()) * sizeof(float));
  }
}

void TensorParallelBackend::gather_rows(const Tensor& table, const int32_t* ids, int64_t n, float* out,
                                        Accumulate accumulate) {
  if (!vocabulary_.count(table.data)) return inner().gather_rows(table, ids, n, out, accumulate);
  // The ids this rank holds, looked up in its rows; zero rows for the rest; summed over the ranks
  // (each id's row comes from exactly one rank, so the sum is that row, bit for bit).
  const int64_t d = table.dim(1);
  held_ids_.clear();
  held_at_.clear();
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] >= vocab_begin_ && ids[i] < vocab_begin_ + vocab_rows_) {
      held_ids_.push_back(int32_t(ids[i] - vocab_begin_));
      held_at_.push_back(i);
    }
  gathered_.resize(held_ids_.size() * size_t(d));
  if (!held_ids_.empty())
    inner().gather_rows(table, held_ids_.data(), int64_t(held_ids_.size()), gathered_.data(), Accumulate::No);
  partial_.assign(size_t(n * d), 0.0f);
  for (size_t j = 0; j < held_at_.size(); ++j)
    std::memcpy(partial_.data() + held_at_[j] * d, gathered_.data() + j * size_t(d), size_t(d) * sizeof(float));
  comm_->all_reduce_sum(partial_.data(), n * d);
  if (accumulate == Accumulate::Yes) return inner().add(out, partial_.data(), n * d);
  std::memcpy(out, partial_.data(), size_t(n * d) * sizeof(float));
}

}  // namespace brisk
