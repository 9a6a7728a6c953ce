#include "parallel/tensor_parallel_backend.h"

namespace brisk {

void TensorParallelBackend::reduce_row_parallel_outputs(Model& model) {
  model.visit_tensors([&](const TensorSpec& spec, Tensor& slot) {
    if (spec.split() == SplitAxis::Rows && !slot.empty()) reduced_.insert(slot.data);
  });
}

void TensorParallelBackend::matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y) {
  inner().matmul(x, m, k, w, bias, y);
  if (reduced_.count(w.data)) comm_->all_reduce_sum(y, m * w.dim(0));
}

}  // namespace brisk
