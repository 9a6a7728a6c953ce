// The optimizer pieces of brisk train (src/train): AdamW's defining properties, gradient clipping
// and the learning-rate schedule.
#include <gtest/gtest.h>

#include <cmath>

#include <filesystem>
#include <fstream>
#include <set>

#include "train/adamw.h"
#include "train/checkpoint.h"
#include "train/lr_schedule.h"
#include "train/token_windows.h"

namespace brisk::train {
namespace {

// From zero moments, bias correction makes the first update lr * g / (|g| + eps) after the decay.
TEST(AdamW, FirstStepIsTheSignScaledByLr) {
  AdamW opt({0.9, 0.999, 1e-8, 0.1});
  std::vector<float> p = {1.0f, -2.0f, 0.5f}, g = {0.3f, -4.0f, 1e-3f};
  AdamWState state;
  opt.update(p.data(), g.data(), 3, state, 1, 0.01);
  const std::vector<double> p0 = {1.0, -2.0, 0.5};
  for (size_t i = 0; i < 3; ++i) {
    const double want = p0[i] * (1 - 0.01 * 0.1) - 0.01 * g[i] / (std::abs(double(g[i])) + 1e-8);
    EXPECT_NEAR(p[i], want, 1e-6) << i;
  }
}

TEST(AdamW, DecayAloneShrinksGeometricallyAndAQuadraticConverges) {
  AdamW decay_only({0.9, 0.999, 1e-8, 0.5});
  std::vector<float> p = {2.0f}, zero = {0.0f};
  AdamWState state;
  for (int64_t step = 1; step <= 10; ++step) decay_only.update(p.data(), zero.data(), 1, state, step, 0.1);
  EXPECT_NEAR(p[0], 2.0 * std::pow(1 - 0.1 * 0.5, 10), 1e-5);
  AdamW opt({0.9, 0.999, 1e-8, 0.0});
  std::vector<float> x = {0.0f};
  AdamWState s;
  for (int64_t step = 1; step <= 2000; ++step) {
    std::vector<float> grad = {2.0f * (x[0] - 3.0f)};  // d/dx (x - 3)^2
    opt.update(x.data(), grad.data(), 1, s, step, step < 1500 ? 0.05 : 0.005);
  }
  EXPECT_NEAR(x[0], 3.0, 0.02);
}

TEST(ClipGradNorm, ScalesOnlyAboveTheLimit) {
  std::vector<float> a = {3.0f}, b = {4.0f};
  EXPECT_NEAR(clip_grad_norm({{a.data(), 1}, {b.data(), 1}}, 1.0), 5.0, 1e-9);
  EXPECT_NEAR(a[0], 0.6, 1e-6);
  EXPECT_NEAR(b[0], 0.8, 1e-6);
  EXPECT_NEAR(clip_grad_norm({{a.data(), 1}, {b.data(), 1}}, 2.0), 1.0, 1e-6);
  EXPECT_NEAR(a[0], 0.6, 1e-6);  // under the limit: unchanged
}

TEST(LrSchedule, WarmupThenCosineToTheFloor) {
  const LrSchedule s{1e-3, 1e-4, 10, 110};
  EXPECT_NEAR(s.at(1), 1e-4, 1e-12);
  EXPECT_NEAR(s.at(10), 1e-3, 1e-12);
  EXPECT_NEAR(s.at(60), (1e-3 + 1e-4) / 2, 1e-12);
  EXPECT_NEAR(s.at(110), 1e-4, 1e-12);
  EXPECT_NEAR(s.at(500), 1e-4, 1e-12);
  for (int64_t step = 11; step < 110; ++step) EXPECT_LE(s.at(step + 1), s.at(step));
}

TEST(TokenWindows, PackFilesAndVisitEveryWindowOncePerEpoch) {
  auto tokenizer = Tokenizer::load(std::string(BRISK_SHARED_DIR) + "/models/sotu-llama");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.error().message;
  const auto dir = std::filesystem::temp_directory_path() / "brisk_token_windows_test";
  std::filesystem::create_directories(dir);
  const std::string first = "The State of the Union is strong. We will build roads and bridges.";
  const std::string second = "Congress shall make no law; the people will decide.";
  std::ofstream(dir / "a.txt") << first;
  std::ofstream(dir / "b.txt") << second;
  const Tokenizer& tok = *tokenizer.value();
  auto windows = TokenWindows::from_files(tok, {dir / "a.txt", dir / "b.txt"}, 4);
  ASSERT_TRUE(windows.ok()) << windows.error().message;
  std::vector<int32_t> all = tok.encode(first, AddSpecial::No);
  all.push_back(*tok.eos_id());  // documents joined by EOS
  for (int32_t id : tok.encode(second, AddSpecial::No)) all.push_back(id);
  EXPECT_EQ(windows->tokens(), int64_t(all.size()));
  EXPECT_EQ(windows->size(), (int64_t(all.size()) - 1) / 4);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    std::set<int64_t> starts;
    for (int64_t i = 0; i < windows->size(); ++i) {
      const auto w = windows->at(epoch, i, 7);
      ASSERT_EQ(w.size(), 5u);
      // Each window is 5 consecutive tokens of the packed text, starting at a multiple of 4.
      bool found = false;
      for (int64_t s = 0; s + 5 <= int64_t(all.size()) && !found; s += 4)
        if (std::equal(w.begin(), w.end(), all.begin() + s)) {
          found = true;
          starts.insert(s);
        }
      EXPECT_TRUE(found) << "window " << i << " of epoch " << epoch;
    }
    EXPECT_EQ(int64_t(starts.size()), windows->size()) << "epoch " << epoch << " repeats a window";
  }
  std::vector<int32_t> epoch0, epoch1, again;
  for (int64_t i = 0; i < windows->size(); ++i) {
    epoch0.push_back(windows->at(0, i, 7)[0]);
    epoch1.push_back(windows->at(1, i, 7)[0]);
  }
  for (int64_t i = 0; i < windows->size(); ++i) again.push_back(windows->at(0, i, 7)[0]);
  EXPECT_EQ(epoch0, again);   // (seed, epoch) fixes the order
  EXPECT_NE(epoch0, epoch1);  // epochs reshuffle
  auto missing = TokenWindows::from_files(tok, {dir / "nope.txt"}, 4);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("nope.txt"), std::string::npos);
  auto too_short = TokenWindows::from_files(tok, {dir / "a.txt"}, 1000);
  ASSERT_FALSE(too_short.ok());
  EXPECT_NE(too_short.error().message.find("fewer than one window"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// Saving after step 2 and resuming gives step 3 bit for bit as the run that never stopped.
TEST(Checkpoint, ResumeContinuesBitForBit) {
  const auto dir = std::filesystem::temp_directory_path() / "brisk_checkpoint_test";
  std::filesystem::create_directories(dir);
  const AdamW opt({0.9, 0.95, 1e-8, 0.1});
  auto gradient = [](int64_t step, size_t i) { return float(std::sin(double(step) * 1.7 + double(i))); };
  TrainState state;
  state.parameters.push_back({"model.layers.0.w", {2, 3}, {0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f}, {}});
  state.parameters.push_back({"model.norm.weight", {3}, {1.0f, 1.0f, 1.0f}, {}});  // never stepped
  state.seed = 42;
  auto step_first = [&](TrainState& s, int64_t step) {
    TrainState::Parameter& p = s.parameters[0];
    std::vector<float> g(p.value.size());
    for (size_t i = 0; i < g.size(); ++i) g[i] = gradient(step, i);
    opt.update(p.value.data(), g.data(), int64_t(g.size()), p.adam, step, 1e-2);
    s.step = step;
    s.window = step * 3;
  };
  TrainState straight = state;
  for (int64_t step = 1; step <= 3; ++step) step_first(straight, step);
  TrainState resumed = state;
  for (int64_t step = 1; step <= 2; ++step) step_first(resumed, step);
  const auto file = dir / "ckpt.safetensors";
  ASSERT_TRUE(save_checkpoint(file, resumed).ok());
  EXPECT_FALSE(std::filesystem::exists(dir / "ckpt.safetensors.partial"));
  auto loaded = load_checkpoint(file);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->step, 2);
  EXPECT_EQ(loaded->window, 6);
  EXPECT_EQ(loaded->seed, 42u);
  ASSERT_EQ(loaded->parameters.size(), 2u);
  EXPECT_TRUE(loaded->parameters[1].adam.m.empty());
  step_first(*loaded, 3);
  EXPECT_EQ(loaded->parameters[0].value, straight.parameters[0].value);
  EXPECT_EQ(loaded->parameters[0].adam.m, straight.parameters[0].adam.m);
  EXPECT_EQ(loaded->parameters[0].adam.v, straight.parameters[0].adam.v);
  // Any 64-bit seed round-trips (the CLI may take one above 2^63).
  resumed.seed = UINT64_MAX;
  ASSERT_TRUE(save_checkpoint(file, resumed).ok());
  ASSERT_TRUE(load_checkpoint(file).ok());
  EXPECT_EQ(load_checkpoint(file)->seed, UINT64_MAX);
  // Not a checkpoint, or cut short: errors naming the file.
  std::ofstream(dir / "junk.safetensors") << "not safetensors";
  auto junk = load_checkpoint(dir / "junk.safetensors");
  ASSERT_FALSE(junk.ok());
  EXPECT_NE(junk.error().message.find("junk.safetensors"), std::string::npos);
  std::filesystem::resize_file(file, std::filesystem::file_size(file) - 8);
  EXPECT_FALSE(load_checkpoint(file).ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace brisk::train
