// brisk's GGUF writer and block encoders (formats/gguf_writer.h, gguf_quantize.cc) against brisk's
// reader and decoders: every metadata type and tensor round-trips, each encoder's decoded values
// stay within its format's error on random, constant, zero and outlier blocks, and a failed
// write leaves nothing behind. (tests/gguf_export_test.py reads the files with an independent
// reader.)
#include "formats/gguf_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "formats/gguf.h"

namespace brisk {
namespace {

std::filesystem::path scratch(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("brisk_gguf_writer_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir / name;
}

TEST(GgufWriter, MetadataAndTensorsRoundTripThroughTheReader) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 7);
  w.set_f32("llama.rope.freq_base", 500000.0f);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_strings("tokenizer.ggml.tokens", {"a", "", "\xe2\x96\x81b"});
  w.set_i32s("tokenizer.ggml.token_type", {1, -3, 4});
  w.set_f32s("tokenizer.ggml.scores", {0.5f, -1.25f});
  w.set_u32("llama.block_count", 6);  // replaced in place, not repeated
  ASSERT_TRUE(w.add_tensor("blk.0.ffn_up.weight", {3, 64}, GgmlType::Q8_0).ok());
  ASSERT_TRUE(w.add_tensor("output_norm.weight", {5}, GgmlType::F32).ok());
  std::vector<float> matrix(3 * 64), norm = {1, -2, 3.5f, 0, 1e-3f};
  for (size_t i = 0; i < matrix.size(); ++i) matrix[i] = i % 32 == 0 ? 127.0f : float(i % 17) - 8.0f;
  const auto path = scratch("round_trip.gguf");
  std::filesystem::remove(path);
  ASSERT_TRUE(w.write(path, [&](size_t i, std::vector<uint8_t>& bytes) {
                 const std::vector<float>& v = i == 0 ? matrix : norm;
                 const GgmlTypeTraits& t = ggml_type_traits(i == 0 ? GgmlType::Q8_0 : GgmlType::F32);
                 t.quantize(v.data(), int64_t(v.size()) / t.block_elems, bytes.data());
                 return ok_status();
               }).ok());
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.error().message;
  const GgufFile& g = *f.value();
  EXPECT_EQ(g.metadata().size(), 7u);
  EXPECT_EQ(g.string("general.architecture").value(), "llama");
  EXPECT_EQ(g.integer("llama.block_count").value(), 6);
  EXPECT_EQ(g.number("llama.rope.freq_base").value(), 500000.0);
  EXPECT_EQ(g.optional_bool("tokenizer.ggml.add_bos_token").value(), std::optional<bool>(true));
  EXPECT_EQ(*g.strings("tokenizer.ggml.tokens").value(), (std::vector<std::string>{"a", "", "\xe2\x96\x81b"}));
  EXPECT_EQ(*g.integers("tokenizer.ggml.token_type").value(), (std::vector<int64_t>{1, -3, 4}));
  EXPECT_EQ(*g.floats("tokenizer.ggml.scores").value(), (std::vector<double>{0.5, -1.25}));
  ASSERT_EQ(g.tensors().size(), 2u);
  const GgufTensorInfo* up = g.find_tensor("blk.0.ffn_up.weight");
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up->shape(), (std::vector<int64_t>{3, 64}));
  std::vector<float> decoded(matrix.size());
  ASSERT_TRUE(g.dequantize(*up, decoded.data()).ok());
  EXPECT_EQ(decoded, matrix);  // each block's largest is 127: d = 1, and integers are exact
  std::vector<float> norm_back(5);
  ASSERT_TRUE(g.dequantize(*g.find_tensor("output_norm.weight"), norm_back.data()).ok());
  EXPECT_EQ(norm_back, norm);

  // A value copied from a reader is written as read.
  GgufWriter copy;
  for (const auto& [key, value] : g.metadata()) copy.set_value(key, value);
  const auto copied = scratch("copied.gguf");
  std::filesystem::remove(copied);
  ASSERT_TRUE(copy.write(copied, [](size_t, std::vector<uint8_t>&) { return ok_status(); }).ok());
  auto h = GgufFile::open(copied);
  ASSERT_TRUE(h.ok()) << h.error().message;
  EXPECT_EQ(*h.value()->strings("tokenizer.ggml.tokens").value(), *g.strings("tokenizer.ggml.tokens").value());
  EXPECT_EQ(*h.value()->integers("tokenizer.ggml.token_type").value(), (std::vector<int64_t>{1, -3, 4}));
  EXPECT_EQ(h.value()->integer("llama.block_count").value(), 6);
}

TEST(GgufWriter, RowsOfPartBlocksAndFailedWritesAreRefused) {
  GgufWriter w;
  auto bad = w.add_tensor("blk.0.ffn_down.weight", {4, 704}, GgmlType::Q4_K);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("blk.0.ffn_down.weight"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("Q4_K blocks of 256"), std::string::npos) << bad.error().message;
  ASSERT_TRUE(w.add_tensor("t", {2, 32}, GgmlType::Q4_0).ok());
  const auto path = scratch("failed.gguf");
  std::filesystem::remove(path);
  auto failed = w.write(path, [](size_t, std::vector<uint8_t>&) -> Status { return make_error("encoder gave up"); });
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().message, "encoder gave up");
  EXPECT_FALSE(std::filesystem::exists(path));
  for (const auto& e : std::filesystem::directory_iterator(path.parent_path()))
    EXPECT_EQ(e.path().filename().string().find("failed.gguf.partial"), std::string::npos) << e.path();
}

// Decoded values of one encoder on a row of n values.
std::vector<float> round_trip(GgmlType type, const std::vector<float>& x) {
  const GgmlTypeTraits& t = ggml_type_traits(type);
  const int64_t blocks = int64_t(x.size()) / t.block_elems;
  std::vector<uint8_t> bytes(size_t(blocks * t.block_bytes));
  t.quantize(x.data(), blocks, bytes.data());
  std::vector<float> out(x.size());
  t.dequantize(bytes.data(), blocks, out.data());
  return out;
}

double relative_rms_error(const std::vector<float>& x, const std::vector<float>& y) {
  double e = 0, s = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    e += double(x[i] - y[i]) * (x[i] - y[i]);
    s += double(x[i]) * x[i];
  }
  return s > 0 ? std::sqrt(e / s) : std::sqrt(e);
}

struct EncoderCase {
  GgmlType type;
  double max_rms;  // relative RMS error on Gaussian values
};

class GgufEncoders : public ::testing::TestWithParam<EncoderCase> {};

TEST_P(GgufEncoders, DecodeNearTheValuesOnOddBlocks) {
  const EncoderCase c = GetParam();
  const int64_t n = 4 * 256;  // whole blocks of every type
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> gauss(static_cast<size_t>(n));
  for (float& v : gauss) v = normal(rng);
  EXPECT_LT(relative_rms_error(gauss, round_trip(c.type, gauss)), c.max_rms);

  // Zeros stay exact zeros; a constant block, a lone outlier among small values and all-negative
  // values decode near the values; tiny magnitudes (fp16 scales underflow, as in llama.cpp's own
  // files) decode finite and no farther than their magnitude.
  const std::vector<float> zeros(static_cast<size_t>(n), 0.0f);
  EXPECT_EQ(round_trip(c.type, zeros), zeros);
  std::vector<float> odd(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t block = i / 256;
    odd[size_t(i)] = block == 0   ? 0.75f
                     : block == 1 ? (i % 97 == 0 ? 3.0f : normal(rng))
                     : block == 2 ? -std::fabs(normal(rng)) - 0.01f
                                  : normal(rng) * 1e-5f;
  }
  const std::vector<float> back = round_trip(c.type, odd);
  for (int64_t block = 0; block < 4; ++block) {
    const std::vector<float> x(odd.begin() + block * 256, odd.begin() + (block + 1) * 256);
    const std::vector<float> y(back.begin() + block * 256, back.begin() + (block + 1) * 256);
    for (float v : y) ASSERT_TRUE(std::isfinite(v)) << "block " << block;
    if (block == 3) {
      float largest = 0;
      for (float v : x) largest = std::max(largest, std::fabs(v));
      for (size_t i = 0; i < x.size(); ++i) EXPECT_LE(std::fabs(x[i] - y[i]), largest + 1e-7f);
      continue;
    }
    // 4-bit formats: a lone outlier costs the small values of its block (absmax scales).
    EXPECT_LT(relative_rms_error(x, y), block == 1 ? 4 * c.max_rms : 2 * c.max_rms)
        << ggml_type_traits(c.type).name << " block " << block;
  }
}

INSTANTIATE_TEST_SUITE_P(Types, GgufEncoders,
                         ::testing::Values(EncoderCase{GgmlType::F32, 1e-7}, EncoderCase{GgmlType::F16, 1e-3},
                                           EncoderCase{GgmlType::BF16, 5e-3}, EncoderCase{GgmlType::Q8_0, 6e-3},
                                           EncoderCase{GgmlType::Q6_K, 2.5e-2}, EncoderCase{GgmlType::Q4_K, 0.1},
                                           EncoderCase{GgmlType::Q4_0, 0.13}),
                         [](const auto& info) { return std::string(ggml_type_traits(info.param.type).name); });

// The K-quant scale search earns its keep: lower error than plain 4-bit RTN on the same values.
TEST(GgufEncoders, Q4KBeatsQ4_0OnGaussianWeights) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(8 * 256);
  for (float& v : x) v = normal(rng);
  EXPECT_LT(relative_rms_error(x, round_trip(GgmlType::Q4_K, x)), relative_rms_error(x, round_trip(GgmlType::Q4_0, x)));
}

}  // namespace
}  // namespace brisk
