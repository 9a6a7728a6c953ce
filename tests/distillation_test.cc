// Distillation (train/distillation.h, train/student_init.h): the whole loss's gradients -- logits
// KD through both heads, feature terms through a learned projection -- equal finite differences;
// a student made of all the teacher's layers computes the teacher's logits; bad requests are
// refused with the thing at fault named.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "backends/cpu/cpu_backend.h"
#include "train/decoder_trainer.h"
#include "train/distillation.h"
#include "train/student_init.h"
#include "train/training_run.h"

namespace brisk::train {
namespace {

namespace fs = std::filesystem;
const fs::path kShared(BRISK_SHARED_DIR);
const fs::path kQwen = kShared / "models" / "sotu-qwen2";
const fs::path kLlama = kShared / "models" / "sotu-llama";

class Distillation : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("brisk_distillation_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<DecoderTrainer> trainer(const fs::path& dir) {
    ModelOptions options;
    options.max_rows = 64;
    auto model = load_model(dir, backend_, options);
    EXPECT_TRUE(model.ok()) << model.error().message;
    if (!model.ok()) return nullptr;
    auto t = DecoderTrainer::from_model(*model.value(), 2);
    EXPECT_TRUE(t.ok()) << t.error().message;
    return t.ok() ? std::move(t.value()) : nullptr;
  }

  CpuBackend backend_{1};
  fs::path dir_;
};

std::vector<int32_t> random_tokens(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = int32_t(rng() % 8000u) + 100;
  return ids;
}

// A 2-layer, 64-wide student of the 256-wide Qwen2 teacher: KD and two feature pairs (one MSE
// through a 256 x 64 projection per pair). Each student tensor's and each projection's largest
// gradient entry against a central difference of the total loss.
TEST_F(Distillation, GradientsMatchFiniteDifferences) {
  StudentOptions s;
  s.teacher = kQwen;
  s.out = dir_ / "student";
  s.shape = {2, 64, 2, 1, 96, ""};
  s.seed = 3;
  ASSERT_TRUE(write_student(s).ok());
  auto student = trainer(s.out);
  auto teacher = trainer(kQwen);
  ASSERT_TRUE(student && teacher);
  DistillLoss loss;
  loss.alpha = 0.6;
  loss.temperature = 1.5;
  loss.feature_layers = {{0, 1}, {1, 3}};
  loss.feature_weight = 0.7;
  auto made = Distiller::create(*student, *teacher, loss, 9);
  ASSERT_TRUE(made.ok()) << made.error().message;
  Distiller& d = *made.value();
  ASSERT_EQ(d.projections().size(), 2u);
  const int64_t window = 5, windows = 2;
  const std::vector<int32_t> tokens = random_tokens(size_t(windows * (window + 1)), 4);
  student->zero_gradients();
  d.step(tokens, windows, window);
  auto total = [&]() {  // the loss alone: a step whose gradients go to scratch copies
    auto saved_grads = student->gradients();
    auto saved_proj = d.projection_gradients();
    const double v = d.step(tokens, windows, window).total;
    student->gradients() = saved_grads;
    d.projection_gradients() = saved_proj;
    return v;
  };
  std::vector<std::pair<std::vector<float>*, std::vector<float>*>> checks;
  for (size_t p = 0; p < student->parameters().size(); ++p)
    checks.emplace_back(&student->parameters()[p].value, &student->gradients()[p]);
  for (size_t p = 0; p < d.projections().size(); ++p)
    checks.emplace_back(&d.projections()[p].value, &d.projection_gradients()[p]);
  for (auto [value, grad] : checks) {
    const size_t i = size_t(std::max_element(grad->begin(), grad->end(), [](float a, float b) {
                              return std::fabs(a) < std::fabs(b);
                            }) - grad->begin());
    const float saved = (*value)[i], h = 1e-2f;
    (*value)[i] = saved + h;
    const double up = total();
    (*value)[i] = saved - h;
    const double down = total();
    (*value)[i] = saved;
    const double fd = (up - down) / (2.0 * double(h));
    EXPECT_NEAR(fd, (*grad)[i], 3e-2 * std::fabs((*grad)[i]) + 3e-4) << "entry " << i;
  }
}

// Every teacher layer, in order: the student is the teacher, so its logits are.
TEST_F(Distillation, StudentOfAllTheTeachersLayersIsTheTeacher) {
  StudentOptions s;
  s.teacher = kLlama;
  s.out = dir_ / "copy";
  s.from_teacher_layers = {0, 1, 2, 3, 4, 5};
  ASSERT_TRUE(write_student(s).ok());
  auto student = trainer(s.out);
  auto teacher = trainer(kLlama);
  ASSERT_TRUE(student && teacher);
  const std::vector<int32_t> tokens = random_tokens(9, 8);
  EXPECT_EQ(student->logits(tokens, 1, 8), teacher->logits(tokens, 1, 8));
}

TEST_F(Distillation, RefusesWhatItCannotDo) {
  StudentOptions s;
  s.teacher = kLlama;
  s.out = dir_ / "narrow";
  s.shape.hidden = 192;  // 6 heads of 32: a valid shape, but not the teacher's width
  s.from_teacher_layers = {0, 3};
  auto narrow = write_student(s);
  ASSERT_FALSE(narrow.ok());
  EXPECT_NE(narrow.error().message.find("in the teacher"), std::string::npos) << narrow.error().message;
  EXPECT_FALSE(fs::exists(s.out));  // nothing written before everything was checked

  s.out = dir_ / "deep";
  s.shape = {};
  s.from_teacher_layers = {0, 9};
  auto deep = write_student(s);
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.error().message.find("no layer 9"), std::string::npos) << deep.error().message;

  EXPECT_FALSE(parse_student_shape("layers=2,hidden=x").ok());
  EXPECT_FALSE(parse_student_shape("layers=2,layers=3").ok());
  EXPECT_FALSE(parse_student_shape("depth=2").ok());
  // Hostile lists: empty items, signs, letters, numbers past 64 bits, a long list of garbage.
  for (const std::string& bad : std::vector<std::string>{"", ",", "1,,2", "-1", "a", "1a", "99999999999999999999", "layers=", "=4",
                                 std::string(100000, ',')}) {
    EXPECT_FALSE(parse_student_shape(bad).ok()) << bad.substr(0, 20);
    if (bad != "layers=" && bad != "=4") {
      EXPECT_FALSE(parse_layer_list(bad).ok()) << bad.substr(0, 20);
    }
  }
  EXPECT_FALSE(parse_student_shape("layers=4,hidden=99999999").ok());  // past the width limit
  EXPECT_FALSE(parse_student_shape("layers=4,arch=bert").ok());
  EXPECT_FALSE(parse_student_shape("arch=gpt2,arch=gpt2").ok());
  auto with_arch = parse_student_shape("layers=4,arch=gpt2", "--shape");
  ASSERT_TRUE(with_arch.ok()) << with_arch.error().message;
  EXPECT_EQ(with_arch.value().arch, "gpt2");
  EXPECT_EQ(with_arch.value().layers, 4);
  const auto named = parse_student_shape("depth=4", "--shape");
  ASSERT_FALSE(named.ok());
  EXPECT_EQ(named.error().message.rfind("--shape:", 0), 0u) << named.error().message;

  // A student whose tokenizer is not the teacher's.
  s.out = dir_ / "other_tokenizer";
  s.from_teacher_layers = {0};
  ASSERT_TRUE(write_student(s).ok());
  std::ofstream(s.out / "tokenizer.json", std::ios::app) << " ";
  TrainOptions o;
  o.model = s.out;
  o.distill = DistillOptions{kLlama, {}, std::nullopt};
  o.data = {kShared / "data" / "text" / "sotu-valid.txt"};
  o.out = dir_ / "run";
  o.steps = 1;
  o.window = 8;
  auto run = run_training(o);
  ASSERT_FALSE(run.ok());
  EXPECT_NE(run.error().message.find("different tokenizers"), std::string::npos) << run.error().message;
}

}  // namespace
}  // namespace brisk::train
