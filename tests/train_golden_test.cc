// The CPU training graph against PyTorch (scripts/golden/make_train_fixtures.py): for tiny golden
// models (Llama with GQA; Qwen2 with q/k/v biases and a tied head), the loss and every parameter's
// gradient of one window, and what two AdamW steps change, equal torch's autograd and
// torch.optim.AdamW.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "backends/cpu/cpu_backend.h"
#include "golden_fixture.h"
#include "train/adamw.h"
#include "train/decoder_trainer.h"

namespace brisk::train {
namespace {

constexpr int64_t kWindow = 39;  // the fixture's 40 ids: inputs 0..38, targets 1..39
constexpr double kLr = 1e-3;     // make_train_fixtures.py's AdamW: betas 0.9 / 0.999, eps 1e-8
constexpr AdamWOptions kAdamW{0.9, 0.999, 1e-8, 0.01};

// The fixture's tensors by name, fp32 (or the F64 losses widened), in the trainer's layout: a
// [in, out] Conv1D gradient transposed to [out, in].
struct Reference {
  std::map<std::string, std::vector<double>> tensors;
};

Reference read_reference(const std::string& variant) {
  Reference r;
  auto file = SafetensorsFile::open(golden::kDir + variant + "/train.safetensors");
  EXPECT_TRUE(file.ok()) << file.error().message;
  if (!file.ok()) return r;
  for (const auto& t : file.value().tensors()) {
    std::vector<double>& v = r.tensors[t.name];
    for (int64_t i = 0; i < t.tensor.numel(); ++i)
      v.push_back(t.tensor.dtype == DType::F64 ? t.tensor.as<double>()[i] : double(t.tensor.as<float>()[i]));
  }
  return r;
}

// `want` in the trainer's layout for parameter p ([in, out] on disk for a Conv1D matrix).
std::vector<double> as_trained(const TrainState::Parameter& p, const std::vector<double>& want) {
  if (!p.stored_transposed) return want;
  const int64_t rows = p.shape[0], cols = p.shape[1];  // the trainer's [out, in]
  std::vector<double> out(want.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[size_t(r * cols + c)] = want[size_t(c * rows + r)];
  return out;
}

double relative_l2(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

class TrainGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainGolden, GradientsAndAdamWStepsEqualPyTorch) {
  const std::string variant = GetParam();
  CpuBackend backend(1);
  auto model = load_model(golden::kDir + variant, backend);
  ASSERT_TRUE(model.ok()) << model.error().message;
  auto made = DecoderTrainer::from_model(*model.value(), 2);
  ASSERT_TRUE(made.ok()) << made.error().message;
  DecoderTrainer& t = *made.value();
  const golden::Golden g = golden::read(variant);
  ASSERT_EQ(int64_t(g.ids.size()), kWindow + 1);
  const Reference ref = read_reference(variant);
  ASSERT_TRUE(ref.tensors.count("losses"));
  const std::vector<double>& losses = ref.tensors.at("losses");

  std::vector<TrainState::Parameter>& params = t.parameters();
  std::vector<std::vector<float>> before;
  for (const TrainState::Parameter& p : params) before.push_back(p.value);
  const AdamW adamw(kAdamW);
  std::vector<AdamWState> states(params.size());
  for (int64_t step = 1; step <= 2; ++step) {
    t.zero_gradients();
    const double loss = t.cross_entropy_step(g.ids, 1, kWindow);
    EXPECT_NEAR(loss, losses[size_t(step - 1)], 1e-5 * losses[size_t(step - 1)]) << variant << " step " << step;
    for (size_t p = 0; p < params.size(); ++p) {
      if (step == 1) {
        const auto it = ref.tensors.find("grad." + params[p].name);
        ASSERT_NE(it, ref.tensors.end()) << params[p].name;
        const double error = relative_l2(t.gradients()[p], as_trained(params[p], it->second));
        EXPECT_LT(error, 1e-4) << variant << " gradient of " << params[p].name;
      }
      adamw.update(params[p].value.data(), t.gradients()[p].data(), int64_t(params[p].value.size()), states[p], step,
                   kLr);
    }
  }
  // Two steps of about lr per element: entries whose gradient is within rounding of zero may step
  // either way, so the change is compared as a whole per tensor.
  double worst = 0;
  for (size_t p = 0; p < params.size(); ++p) {
    const auto it = ref.tensors.find("delta." + params[p].name);
    ASSERT_NE(it, ref.tensors.end()) << params[p].name;
    std::vector<float> delta(params[p].value.size());
    for (size_t i = 0; i < delta.size(); ++i) delta[i] = params[p].value[i] - before[p][i];
    const double error = relative_l2(delta, as_trained(params[p], it->second));
    worst = std::max(worst, error);
    EXPECT_LT(error, 1e-3) << variant << " AdamW change of " << params[p].name;
  }
  std::printf("[train-golden] %s: loss %.6f / %.6f, worst AdamW change error %.2e\n", variant.c_str(), losses[0],
              losses[1], worst);
}

// gpt2 joins when its fixture is made again: the first one ran transformers in train() mode, with
// GPT-2's 0.1 dropout (the script now uses eval()).
INSTANTIATE_TEST_SUITE_P(Models, TrainGolden, ::testing::Values("llama-gqa", "qwen2"), golden::test_name);

}  // namespace
}  // namespace brisk::train
