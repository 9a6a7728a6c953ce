// brisk distill: train a student on a teacher's soft labels and hidden states
// (train/distillation.h), on the CPU.
#include <memory>

#include "train/student_init.h"
#include "train_flags.h"

namespace brisk::cli {

namespace {

// "s0:t0,s1:t3": student layer : teacher layer pairs.
Result<std::vector<std::pair<int64_t, int64_t>>> parse_feature_layers(const std::string& text) {
  std::vector<std::pair<int64_t, int64_t>> pairs;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    const size_t colon = item.find(':');
    if (colon == std::string::npos) return make_error("--feature-layers: '" + item + "' is not student:teacher");
    BRISK_ASSIGN(s, train::parse_layer_list(item.substr(0, colon)));
    BRISK_ASSIGN(t, train::parse_layer_list(item.substr(colon + 1)));
    if (s.size() != 1 || t.size() != 1) return make_error("--feature-layers: '" + item + "' is not student:teacher");
    pairs.emplace_back(s[0], t[0]);
    start = end + 1;
  }
  return pairs;
}

}  // namespace

Command add_distill(CLI::App& app) {
  struct Flags {
    TrainFlags train;
    std::string teacher, student, student_shape, init_layers, feature_layers, kl = "forward", feature = "mse";
    bool balance = false;
  };
  auto f = std::make_shared<Flags>();
  train::DistillLoss& loss = f->train.run.distill.emplace().loss;
  CLI::App* sub = app.add_subcommand(
      "distill",
      "Train a student (llama, qwen2 or gpt2, the teacher's tokenizer) on a teacher's soft labels:\n"
      "  L = (1 - alpha) CE + alpha T^2 KL(p_teacher^T || p_student^T)   (--kl reverse: the other KL)\n"
      "    + feature terms: MSE or cosine between student and teacher hidden states (--feature-layers),\n"
      "      through a learned projection when the widths differ\n"
      "fp32 on the CPU, the logits terms chunked over the vocabulary. The student is a folder\n"
      "(--student) or new (--student-shape, random or --init-from-teacher layers). Otherwise as\n"
      "'brisk train' (schedule, evaluation, checkpoints, --resume, the output folder)");
  sub->add_option("--teacher", f->teacher, "Teacher folder (llama, qwen2 or gpt2, float weights)")->required();
  sub->add_option("--student", f->student, "Student folder to start from");
  sub->add_option("--student-shape", f->student_shape,
                  "A new student: layers=L,hidden=H,heads=A,kv_heads=K,ffn=F (missing keys: the teacher's)");
  sub->add_option("--init-from-teacher", f->init_layers,
                  "A new student made of these teacher layers, in order (0,2,4: its layers 0, 1, 2 start as the\n"
                  "teacher's 0, 2, 4), with the teacher's embeddings, final norm and head (so its widths are the\n"
                  "teacher's)");
  sub->add_option("--alpha", loss.alpha, "Weight of the KL term against cross-entropy")->capture_default_str()->check(in_range(0, 1));
  sub->add_option("--temp", loss.temperature, "Softmax temperature of both models' logits")->capture_default_str()->check(positive());
  sub->add_option("--kl", f->kl, "forward: KL(teacher || student); reverse: KL(student || teacher)")
      ->capture_default_str()->check(CLI::IsMember({"forward", "reverse"}));
  sub->add_option("--feature-layers", f->feature_layers, "Hidden-state pairs student:teacher, e.g. 1:2,3:5");
  sub->add_option("--feature-loss", f->feature, "mse or cosine")->capture_default_str()->check(CLI::IsMember({"mse", "cosine"}));
  sub->add_option("--feature-weight", loss.feature_weight, "Weight of each feature term")->capture_default_str()->check(non_negative());
  sub->add_flag("--balance-features", f->balance,
                "Scale each feature term to the logits terms' size every step (instead of --feature-weight)");
  add_training_flags(sub, f->train);
  auto sub_count = [sub](const char* flag) { return sub->count(flag) > 0; };
  return {sub, [f, sub_count, sub]() {
    if (const std::string unused = unused_training_flag(*sub, f->train); !unused.empty()) return fail(unused);
    train::DistillOptions& d = *f->train.run.distill;
    d.teacher = f->teacher;
    d.loss.kl = f->kl == "reverse" ? ref::KlDirection::Reverse : ref::KlDirection::Forward;
    d.loss.feature = f->feature == "cosine" ? ref::FeatureLoss::Cosine : ref::FeatureLoss::Mse;
    d.loss.weighting = f->balance ? train::FeatureWeighting::Balanced : train::FeatureWeighting::Fixed;
    // Flags that would change nothing are refused rather than ignored.
    if (f->feature_layers.empty())
      for (const char* flag : {"--feature-loss", "--feature-weight", "--balance-features"})
        if (sub_count(flag)) return fail(std::string(flag) + " needs --feature-layers");
    if (f->balance && sub_count("--feature-weight"))
      return fail("--feature-weight and --balance-features both set the feature terms' weight: give one");
    if (!f->feature_layers.empty()) {
      auto pairs = parse_feature_layers(f->feature_layers);
      if (!pairs) return fail(pairs.error());
      d.loss.feature_layers = pairs.value();
    }
    const bool new_student = !f->student_shape.empty() || !f->init_layers.empty();
    if (new_student == !f->student.empty())
      return fail("give the student as --student DIR or as --student-shape / --init-from-teacher (one of them)");
    if (new_student) {
      train::StudentOptions s;
      s.seed = f->train.run.seed;
      if (!f->student_shape.empty()) {
        auto shape = train::parse_student_shape(f->student_shape);
        if (!shape) return fail(shape.error());
        s.shape = shape.value();
      }
      if (!f->init_layers.empty()) {
        auto layers = train::parse_layer_list(f->init_layers);
        if (!layers) return fail(layers.error());
        s.from_teacher_layers = layers.value();
      }
      d.student = s;
    } else {
      f->train.run.model = f->student;
    }
    return run_and_report(f->train);
  }};
}

}  // namespace brisk::cli
