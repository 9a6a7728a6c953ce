// Why: a .gguf file is untrusted input that brisk reads in three passes: the container (metadata
// KVs, tensor infos, alignment, data ranges), the architecture keys and tensors a model loads
// (renamed, un-permuted, dequantized), and the tokenizer.ggml.* vocabulary. A past bug: an
// invalid general.alignment built its error from a mapping not yet set (SIGSEGV).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "exercise_tokenizer.h"
#include "formats/gguf.h"
#include "models/gguf_model.h"
#include "scratch_file.h"
#include "tokenizer/gguf_tokenizer.h"

namespace {

// Tensors past this many values (16 MiB of floats) are not dequantized. Tensor data lies inside
// the file, at most ~3 values per byte (Q2_K), so only inputs far above run_fuzzer.sh's -max_len
// reach it: it bounds memory, not what is fuzzed.
constexpr int64_t kMaxDecodedValues = int64_t(1) << 22;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static brisk::fuzz::ScratchFile scratch(".gguf");  // Tokenizer loading wants the .gguf name
  const std::filesystem::path& path = scratch.write(data, size);
  auto file = brisk::GgufFile::open(path);
  if (!file.ok()) return 0;
  std::vector<float> decoded;
  for (const brisk::GgufTensorInfo& tensor : file.value()->tensors()) {
    if (tensor.numel() > kMaxDecodedValues) continue;
    decoded.assign(size_t(tensor.numel()), 0.0f);
    (void)file.value()->dequantize(tensor, decoded.data());
  }
  if (auto config = brisk::gguf_model_config(*file.value()); config.ok())
    (void)brisk::gguf_weight_store(file.value(), config.value());
  if (auto tokenizer = brisk::load_gguf_tokenizer(path); tokenizer.ok())
    brisk::fuzz::exercise_tokenizer(*tokenizer.value(), brisk::fuzz::kSampleText);
  return 0;
}
