// A decoder's fp32 training graph on the CPU (issue 21): the Llama family's pre-norm layer stack
//   x += o(Attn(rope(q(n1)), rope(k(n1)), v(n1))), n1 = RMSNorm(x)
//   x += down(silu(gate(n2)) * up(n2)),             n2 = RMSNorm(x)
//   logits = head(RMSNorm(x))
// (Llama, Qwen2's q/k/v biases, Mistral without a sliding window), and GPT-2's block (LayerNorm
// with shift, learned positions, fused q/k/v, GELU-tanh MLP, biases) over whole windows of tokens,
// every activation kept for the backward pass. The forward is the inference model's arithmetic on
// the same fp32 weights (the parameters come from a model the engine loaded, by role), and the
// tests compare its logits with the engine's, so what training optimizes is what brisk runs.
// Linear layers and the output head run the CPU's SIMD kernels (cpu::matmul, cpu/train_gemm.h,
// train/head_losses.h); norms, RoPE, attention and SwiGLU their reference gradients
// (ops/reference_grad.h). Deterministic: the same bits for any thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <span>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "compress/quantize.h"
#include "compress/quantize_model.h"
#include "models/model.h"
#include "train/checkpoint.h"

namespace brisk::train {

// Quantization-aware training's formats: every block linear layer by `spec`, except the modules
// `modules` names, which take their own choice (nullopt: they compute in fp32) -- brisk optimize
// --recover trains its mixed recipe so. The trained model is written quantized the same way.
struct QatRecipe {
  QuantSpec spec;
  ModuleRecipe modules;
  // The format of the weight `tensor` ("<module>.weight"), or nullopt where it stays fp32.
  std::optional<QuantSpec> spec_of(const std::string& tensor) const;
};

// What a forward pass keeps for its backward pass: every activation, or each layer's input alone,
// the rest computed again layer by layer during the backward pass (activation checkpointing: one
// more forward's work for activations of one layer instead of all; gradients bit for bit the same).
enum class ActivationMemory { All, LayerInputs };

class DecoderTrainer {
 public:
  // fp32 copies of `model`'s parameters (a Llama-family or GPT-2 decoder loaded on a CPU backend with row-major
  // weights), named and shaped as its checkpoint names them. Errors name what is not supported.
  static Result<std::unique_ptr<DecoderTrainer>> from_model(Model& model, int threads);
  ~DecoderTrainer();
  DecoderTrainer(const DecoderTrainer&) = delete;
  DecoderTrainer& operator=(const DecoderTrainer&) = delete;

  const ModelConfig& config() const;
  void set_activation_memory(ActivationMemory memory);
  // The longest window it takes: the learned positions (GPT-2), else no limit.
  int64_t max_window() const;
  ThreadPool& pool();  // the trainer's threads, for the losses computed beside it
  // Parameters in the checkpoint's order, and one gradient array per parameter (same sizes).
  std::vector<TrainState::Parameter>& parameters();
  std::vector<std::vector<float>>& gradients();
  void zero_gradients();

  // Quantization-aware training (--qat): the layers' linear weights compute, forward and in the
  // input gradient, with their fake-quantized values (compress/fake_quantize.h) while their
  // gradients go to the fp32 masters unchanged (the straight-through estimator). The embeddings,
  // norms and output head stay fp32. Call refresh after every optimizer step.
  Status set_fake_quantization(const QatRecipe& recipe);
  Status refresh_fake_quantization();

  // --keep-sparsity (recovery fine-tuning of a pruned model): the layers' linear weights that are
  // exactly zero when this is called stay zero. Their gradients are dropped before the optimizer
  // (clipping and moments see only the trained weights) and the weights set to zero after it.
  void freeze_zeros();
  // --l1: adds lambda * sign(w) to the gradients of the layers' linear weights (the subgradient of
  // lambda * sum |w|, which drives weights toward zero for pruning); zeros get none.
  void add_l1_gradient(double lambda);
  void drop_frozen_gradients();
  void zero_frozen_weights();
  int64_t frozen_zeros() const;

  // `windows` sequences of window + 1 tokens each, back to back in `tokens`: the inputs are each
  // sequence's first `window` tokens at positions 0.., the targets the same shifted by one.
  // Returns the mean next-token cross-entropy; adds its gradients to gradients().
  double cross_entropy_step(std::span<const int32_t> tokens, int64_t windows, int64_t window);
  // The loss alone (no gradients).
  double cross_entropy(std::span<const int32_t> tokens, int64_t windows, int64_t window);
  // The logits of the inputs, [windows * window, vocab] (for tests against the engine).
  std::vector<float> logits(std::span<const int32_t> tokens, int64_t windows, int64_t window);

  // The pieces other losses are built from (distillation): a forward pass that keeps what its
  // backward pass needs, its activations, and the backward pass from gradients of them.
  struct Pass;
  struct PassDeleter {
    void operator()(Pass* pass) const;
  };
  using PassPtr = std::unique_ptr<Pass, PassDeleter>;
  PassPtr forward(std::span<const int32_t> tokens, int64_t windows, int64_t window);
  int64_t rows(const Pass& pass) const;                           // windows * window
  std::span<const int32_t> targets(const Pass& pass) const;       // [rows]
  std::span<const float> final_hidden(const Pass& pass) const;    // [rows, d]: the final norm's output
  std::span<const float> layer_output(const Pass& pass, int64_t layer) const;  // [rows, d]: the residual after it
  // The output head [vocab, d] (the embeddings when tied) and its gradient.
  const float* head() const;
  float* head_gradient();
  // Adds to gradients() the gradients of a loss given dL/d(final_hidden) [rows, d] and, for the
  // layers listed, dL/d(layer_output(layer)).
  struct LayerGradient {
    int64_t layer;
    const float* grad;  // [rows, d]
  };
  void backward(Pass& pass, const float* dfinal, std::span<const LayerGradient> layer_grads = {});

 private:
  struct Impl;
  explicit DecoderTrainer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace brisk::train
