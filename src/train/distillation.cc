#include "train/distillation.h"

#include <cmath>
#include <string>

#include "core/splitmix64.h"
#include "train/head_losses.h"

namespace brisk::train {

Result<std::unique_ptr<Distiller>> Distiller::create(DecoderTrainer& student, DecoderTrainer& teacher, DistillLoss loss,
                                                     uint64_t seed) {
  const ModelConfig &s = student.config(), &t = teacher.config();
  if (s.vocab_size != t.vocab_size)
    return make_error("the student's vocabulary (" + std::to_string(s.vocab_size) + ") is not the teacher's (" +
                      std::to_string(t.vocab_size) + "): distillation needs one tokenizer");
  if (!(loss.alpha >= 0 && loss.alpha <= 1)) return make_error("--alpha must be in [0, 1]");
  if (!(loss.temperature > 0)) return make_error("--temp must be positive");
  std::unique_ptr<Distiller> d(new Distiller(student, teacher, loss));
  SplitMix64 rng{seed ^ 0xD1571770ull};
  for (auto [sl, tl] : d->loss_.feature_layers) {
    if (sl < 0 || sl >= s.n_layers || tl < 0 || tl >= t.n_layers)
      return make_error("--feature-layers " + std::to_string(sl) + ":" + std::to_string(tl) +
                        ": the student has layers 0.." + std::to_string(s.n_layers - 1) + ", the teacher 0.." +
                        std::to_string(t.n_layers - 1));
    if (s.hidden_size == t.hidden_size) {
      d->projection_of_.push_back(-1);
      continue;
    }
    d->projection_of_.push_back(int(d->projections_.size()));
    TrainState::Parameter p;
    p.name = "distill.proj." + std::to_string(sl) + "_" + std::to_string(tl);
    p.shape = {t.hidden_size, s.hidden_size};
    p.value.resize(size_t(t.hidden_size * s.hidden_size));
    // U(-1/sqrt(in), 1/sqrt(in)), torch.nn.Linear's default.
    const double bound = 1.0 / std::sqrt(double(s.hidden_size));
    for (float& v : p.value) v = float((double(rng.next() >> 11) / 9007199254740992.0 * 2.0 - 1.0) * bound);
    d->projection_grads_.emplace_back(p.value.size(), 0.0f);
    d->projections_.push_back(std::move(p));
  }
  return d;
}

DistillTerms Distiller::step(std::span<const int32_t> tokens, int64_t windows, int64_t window) {
  const ModelConfig &sc = student_.config(), &tc = teacher_.config();
  const int64_t ds = sc.hidden_size, dt = tc.hidden_size;
  auto teacher_pass = teacher_.forward(tokens, windows, window);
  auto student_pass = student_.forward(tokens, windows, window);
  const int64_t rows = student_.rows(*student_pass);
  std::vector<float> dfinal(size_t(rows * ds));
  const HeadSide student{student_.final_hidden(*student_pass).data(), student_.head(), ds};
  const HeadSide teacher{teacher_.final_hidden(*teacher_pass).data(), teacher_.head(), dt};
  HeadLossOptions head;
  head.alpha = loss_.alpha, head.temperature = loss_.temperature, head.direction = loss_.kl;
  const ref::DistillationLoss logits = head_loss(student, &teacher, rows, sc.vocab_size,
                                                 student_.targets(*student_pass).data(), head, dfinal.data(),
                                                 student_.head_gradient(), student_.pool());
  DistillTerms terms;
  terms.total = logits.total;
  terms.cross_entropy = logits.cross_entropy;
  terms.kl = logits.kl;

  std::vector<std::vector<float>> feature_grads;
  std::vector<DecoderTrainer::LayerGradient> layer_grads;
  std::vector<float> dproj;
  for (size_t p = 0; p < loss_.feature_layers.size(); ++p) {
    const auto [sl, tl] = loss_.feature_layers[p];
    const int proj = projection_of_[p];
    std::vector<float>& dhs = feature_grads.emplace_back(size_t(rows * ds));
    if (proj >= 0) dproj.assign(projection_grads_[size_t(proj)].size(), 0.0f);
    const double value = ref::feature_distillation(
        student_.layer_output(*student_pass, sl).data(), ds, proj >= 0 ? projections_[size_t(proj)].value.data() : nullptr,
        teacher_.layer_output(*teacher_pass, tl).data(), dt, rows, loss_.feature, dhs.data(),
        proj >= 0 ? dproj.data() : nullptr);
    // Balanced: this term enters at the logits terms' size (its weight a constant of the batch).
    const double weight = loss_.weighting == FeatureWeighting::Balanced
                              ? (value > 0 ? logits.total / value : 0.0)
                              : loss_.feature_weight;
    for (float& g : dhs) g = float(double(g) * weight);
    if (proj >= 0) {
      std::vector<float>& into = projection_grads_[size_t(proj)];
      for (size_t i = 0; i < into.size(); ++i) into[i] += float(double(dproj[i]) * weight);
    }
    layer_grads.push_back({sl, dhs.data()});
    terms.feature += weight * value;
    terms.total += weight * value;
  }
  student_.backward(*student_pass, dfinal.data(), layer_grads);
  return terms;
}

}  // namespace brisk::train
