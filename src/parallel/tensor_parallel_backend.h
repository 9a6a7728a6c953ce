// Tensor parallelism's additions to a rank's forward pass (issue 23; the split itself is
// models/tensor_parallel.h), made where the ops run so the model files stay as they are and see
// whole results:
//  - after a row-parallel product (o, down) each rank holds a partial sum over its share of the
//    inputs: all-reduced right there;
//  - the token table holds this rank's vocabulary rows: a lookup fetches the ids it holds (zero
//    rows for the others) and the ranks sum the rows;
//  - the head (or the table tied to it) computes this rank's columns of the logits: the ranks
//    gather them into every rank's whole row of vocab_size logits.
// Every other op runs on the inner backend as usual. The collectives and the bookkeeping run on
// host memory: the ranks are CPU processes today (--tp refuses --device cuda).
#pragma once

#include <memory>
#include <unordered_set>
#include <vector>

#include "models/model.h"
#include "ops/communicator.h"
#include "ops/forwarding_backend.h"

namespace brisk {

class TensorParallelBackend final : public ForwardingBackend {
 public:
  TensorParallelBackend(std::unique_ptr<Backend> inner, std::shared_ptr<Communicator> comm)
      : ForwardingBackend(*inner), owned_(std::move(inner)), comm_(std::move(comm)) {}
  // Marks the weights of `model` (this rank's share, loaded on this backend) whose results the
  // ranks combine: the row-parallel matrices and the vocabulary's token table and head.
  void connect(Model& model);

  void matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y) override;
  void gather_rows(const Tensor& table, const int32_t* ids, int64_t n, float* out, Accumulate accumulate) override;
  // The host-side collective cannot be recorded into a device graph.
  bool can_record() const override { return false; }

 private:
  std::unique_ptr<Backend> owned_;
  std::shared_ptr<Communicator> comm_;
  std::unordered_set<const void*> reduced_;     // row-parallel weights' data
  std::unordered_set<const void*> vocabulary_;  // the token table's and the head's data
  int64_t vocab_ = 0;                           // the whole vocabulary
  int64_t vocab_begin_ = 0, vocab_rows_ = 0;    // this rank's rows of it
  std::vector<float> partial_, gathered_;       // host scratch of the vocabulary's collectives
  std::vector<int32_t> held_ids_;
  std::vector<int64_t> held_at_;
};

}  // namespace brisk
