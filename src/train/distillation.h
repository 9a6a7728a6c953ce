// Knowledge distillation's loss for one batch (issue 21): a teacher's forward pass, the student's,
//   L = (1 - alpha) * CE + alpha * T^2 * KL(p_teacher^T || p_student^T)   (or the reverse KL)
//     + sum over --feature-layers pairs of weight * feature_loss(proj(student layer s), teacher layer t)
// with the logits terms computed chunk by chunk over the vocabulary (ref::distillation_head) and
// a learned linear projection per pair when the widths differ (ref::feature_distillation), then
// the student's backward pass. The teacher is a float model in the same training graph (its
// per-layer hidden states are what feature distillation needs); it gets no gradient.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "ops/reference_grad.h"
#include "train/checkpoint.h"
#include "train/decoder_trainer.h"

namespace brisk::train {

// How the feature terms are weighted: as given, or each scaled (as a constant, per batch) to the
// logits terms' magnitude, so no term swamps the others whatever its units.
enum class FeatureWeighting { Fixed, Balanced };

struct DistillLoss {
  double alpha = 0.5;        // weight of the KL term against cross-entropy
  double temperature = 2.0;
  ref::KlDirection kl = ref::KlDirection::Forward;
  std::vector<std::pair<int64_t, int64_t>> feature_layers;  // (student layer, teacher layer)
  ref::FeatureLoss feature = ref::FeatureLoss::Mse;
  double feature_weight = 1.0;
  FeatureWeighting weighting = FeatureWeighting::Fixed;
};

// What one batch's loss came to (means over its tokens).
struct DistillTerms {
  double total = 0, cross_entropy = 0, kl = 0, feature = 0;
};

class Distiller {
 public:
  // Errors: a layer pair outside either model, a vocabulary the two do not share.
  static Result<std::unique_ptr<Distiller>> create(DecoderTrainer& student, DecoderTrainer& teacher, DistillLoss loss,
                                                   uint64_t seed);

  // The learned projections ("distill.proj.<s>_<t>", [teacher d, student d], only for pairs whose
  // widths differ) and their gradients: optimized and checkpointed with the student.
  std::vector<TrainState::Parameter>& projections() { return projections_; }
  std::vector<std::vector<float>>& projection_gradients() { return projection_grads_; }

  // The loss of one batch (DecoderTrainer's token layout); adds its gradients to the student's and
  // the projections'.
  DistillTerms step(std::span<const int32_t> tokens, int64_t windows, int64_t window);

 private:
  Distiller(DecoderTrainer& student, DecoderTrainer& teacher, DistillLoss loss)
      : student_(student), teacher_(teacher), loss_(std::move(loss)) {}
  DecoderTrainer& student_;
  DecoderTrainer& teacher_;
  DistillLoss loss_;
  std::vector<int> projection_of_;  // per feature pair: index into projections_, or -1 (same width)
  std::vector<TrainState::Parameter> projections_;
  std::vector<std::vector<float>> projection_grads_;
};

}  // namespace brisk::train
