// The losses through the output head, fast (issue 21): next-token cross-entropy and logits
// distillation over [tokens, vocab] logits that never exist whole. Per chunk of vocabulary rows
// the logits are one cpu::matmul, the normalizers an online log-sum-exp per token, and the
// gradient of the chunk's logits goes back through cpu::linear_input_grad / linear_weight_grad.
// The quantities are ref::cross_entropy_head's and ref::distillation_head's (the tests hold them
// to those); sums over the vocabulary run in double, logits and gradients in fp32.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "ops/reference_grad.h"

namespace brisk::train {

// One model's side: hidden states h [tokens, d] and its head w [vocab, d].
struct HeadSide {
  const float* h;
  const float* w;
  int64_t d;
};

struct HeadLossOptions {
  double alpha = 0;  // 0: cross-entropy alone (no teacher is read)
  double temperature = 1;
  ref::KlDirection direction = ref::KlDirection::Forward;
  int64_t chunk = 2048;  // vocabulary rows per pass
};

// (1 - alpha) CE + alpha T^2 KL averaged over tokens whose target is >= 0; dh written, dw added
// (either may be null). teacher may be null when alpha is 0.
ref::DistillationLoss head_loss(const HeadSide& student, const HeadSide* teacher, int64_t tokens, int64_t vocab,
                                const int32_t* targets, const HeadLossOptions& options, float* dh, float* dw,
                                ThreadPool& pool);

}  // namespace brisk::train
