// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019) as PyTorch's
// torch.optim.AdamW computes it, and global gradient-norm clipping as
// torch.nn.utils.clip_grad_norm_ does: the optimizer of `brisk train` / `brisk distill` (issue 21).
// fp32 master weights and fp32 moments; the arithmetic of one element in double.
#pragma once

#include <cstdint>
#include <vector>

namespace brisk::train {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

// One parameter tensor's moments.
struct AdamWState {
  std::vector<float> m, v;  // first and second moments, zero at step 0
};

class AdamW {
 public:
  explicit AdamW(AdamWOptions options) : options_(options) {}

  // The update for step `step` (1-based, as PyTorch counts) at learning rate lr:
  //   p -= lr * weight_decay * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
  //   p -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps)
  void update(float* params, const float* grads, int64_t n, AdamWState& state, int64_t step, double lr) const;

 private:
  AdamWOptions options_;
};

// Scales every gradient by max_norm / (norm + 1e-6) when their joint L2 norm exceeds max_norm;
// returns the norm before clipping (PyTorch's return value).
double clip_grad_norm(const std::vector<std::pair<float*, int64_t>>& grads, double max_norm);

}  // namespace brisk::train
