// brisk export of every golden fixture family: an F32 export, loaded back, gives transformers'
// logits (the golden tests' 1e-4 relative L2) at prefill and decode chunk sizes; a Q8_0 export stays
// within the rounding bound the GGUF reader tests use; what GGUF (or llama.cpp's graph for the
// architecture) cannot express is refused naming it, with no file left behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <unistd.h>

#include "backends/cpu/cpu_backend.h"
#include "export/gguf_export.h"
#include "golden_fixture.h"
#include "models/model.h"

namespace brisk {
namespace {

namespace fs = std::filesystem;

fs::path scratch_dir() {
  const fs::path dir = fs::temp_directory_path() / ("brisk_export_family_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

using ExportCase = std::tuple<std::string, GgmlType>;
class GgufExportFamilies : public ::testing::TestWithParam<ExportCase> {};

TEST_P(GgufExportFamilies, LoadBackWithTransformersLogits) {
  const auto& [variant, type] = GetParam();
  const fs::path out = scratch_dir() / (variant + "-" + ggml_type_traits(type).name + ".gguf");
  fs::remove(out);
  GgufExportOptions options;
  options.matrix_type = type;
  auto report = export_gguf(golden::kDir + variant, out, options);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(report->tokenizer, "");  // the fixtures hold weights only
  const golden::Golden g = golden::read(variant);
  CpuBackend backend(2);
  auto model = load_model(out, backend, {64, 0});
  ASSERT_TRUE(model.ok()) << model.error().message;
  // Q8_0 rounds each weight to 8 bits per block of 32: the bound gguf_family_test gives it.
  const double tolerance = type == GgmlType::F32 ? 1e-4 : 4e-2;
  for (int64_t chunk : {int64_t(64), int64_t(7), int64_t(1)})
    EXPECT_LT(golden::relative_l2(golden::run(*model.value(), g.ids, chunk), g.logits), tolerance)
        << variant << " chunk=" << chunk;
  fs::remove(out);
}

INSTANTIATE_TEST_SUITE_P(Variants, GgufExportFamilies,
                         ::testing::Combine(::testing::Values("llama-gqa", "llama-mha-tied-headdim", "llama-mqa-bias",
                                                              "qwen2", "mistral", "gpt2", "qwen2-bf16"),
                                            ::testing::Values(GgmlType::F32, GgmlType::Q8_0)),
                         [](const auto& info) {
                           std::string name = std::get<0>(info.param) + "_" + ggml_type_traits(std::get<1>(info.param)).name;
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

TEST(GgufExportFamilies, WhatGgufCannotSayIsRefusedByName) {
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"llama3-rope", "rope scaling 'llama3'"},
      {"mistral-window", "sliding-window attention"},
      {"phi3", "fused qkv"},
      {"gemma2", "model_type 'gemma2'"},
      {"bert", "model_type 'bert'"},
  };
  for (const auto& [variant, needle] : refused) {
    const fs::path out = scratch_dir() / (variant + ".gguf");
    fs::remove(out);
    auto report = export_gguf(golden::kDir + variant, out, {});
    ASSERT_FALSE(report.ok()) << variant;
    EXPECT_NE(report.error().message.find(needle), std::string::npos) << report.error().message;
    EXPECT_FALSE(fs::exists(out)) << variant;
  }
}

}  // namespace
}  // namespace brisk
