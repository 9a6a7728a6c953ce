// Tensor parallelism's one addition to a rank's forward pass (issue 23): after a row-parallel
// product (o, down: models/tensor_parallel.h), each rank holds a partial sum over its share of the
// inputs; this wrapper all-reduces it right there, so the model files stay as they are and see the
// whole product. Every other op runs on the inner backend as usual.
#pragma once

#include <memory>
#include <unordered_set>

#include "models/model.h"
#include "ops/communicator.h"
#include "ops/forwarding_backend.h"

namespace brisk {

class TensorParallelBackend final : public ForwardingBackend {
 public:
  TensorParallelBackend(std::unique_ptr<Backend> inner, std::shared_ptr<Communicator> comm)
      : ForwardingBackend(*inner), owned_(std::move(inner)), comm_(std::move(comm)) {}
  // Marks the row-parallel matrices of `model` (loaded on this backend) whose products are summed.
  void reduce_row_parallel_outputs(Model& model);

  void matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y) override;
  // The host-side collective cannot be recorded into a device graph.
  bool can_record() const override { return false; }

 private:
  std::unique_ptr<Backend> owned_;
  std::shared_ptr<Communicator> comm_;
  std::unordered_set<const void*> reduced_;  // row-parallel weights' data
};

}  // namespace brisk
