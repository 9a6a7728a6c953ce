// GGUF: block decoding against independent expectations, models converted by tests/gguf_writer.py
// (an independent writer) against the original safetensors folders, and corrupt files.
#include "formats/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <set>

#include "backends/cpu/cpu_backend.h"
#include "core/dtype.h"
#include "models/gguf_model.h"
#include "models/model.h"
#include "runtime/perplexity.h"
#include "tokenizer/tokenizer.h"

namespace brisk {
namespace {

namespace fs = std::filesystem;
const fs::path kShared = fs::path(BRISK_SHARED_DIR);
const fs::path kWork = fs::path(BRISK_GGUF_WORK_DIR);

fs::path model_dir(const std::string& name) { return kShared / "models" / name; }

// Converts a shared model unless an up-to-date conversion exists (ctest runs each test in its
// own process; the writer renames finished files into place, so parallel runs are safe).
fs::path converted(const std::string& model, const std::string& type) {
  fs::create_directories(kWork);
  const fs::path out = kWork / (model + "-" + type + ".gguf");
  const fs::path sidecar = kWork / (model + "-" + type + ".sidecar");
  const fs::path writer = BRISK_GGUF_WRITER;
  std::error_code ec;
  const bool fresh = fs::exists(out) && fs::exists(sidecar) &&
                     fs::last_write_time(out, ec) >= fs::last_write_time(writer, ec);
  if (!fresh) {
    const std::string cmd = "python3 " + writer.string() + " model " + model_dir(model).string() + " " +
                            out.string() + " --type " + type + " --sidecar " + sidecar.string();
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  return out;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

#define EXPECT_HAS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

// ---------------------------------------------------------------------------- block formats

class GgufQuants : public ::testing::TestWithParam<std::string> {};

// The writer's own decoder wrote the expected values of blk.0.ffn_down.weight into a sidecar.
TEST_P(GgufQuants, MatchesTheWritersDequantization) {
  const fs::path path = converted("sotu-llama", GetParam());
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.error().message;
  const GgufTensorInfo* t = file.value()->find_tensor("blk.0.ffn_down.weight");
  ASSERT_NE(t, nullptr);
  std::vector<float> got(size_t(t->numel()));
  ASSERT_TRUE(file.value()->dequantize(*t, got.data()).ok());
  const std::string expected = read_bytes(fs::path(path).replace_extension(".sidecar"));
  ASSERT_EQ(expected.size(), got.size() * 4);
  for (size_t i = 0; i < got.size(); ++i) {
    float e;
    std::memcpy(&e, expected.data() + 4 * i, 4);
    ASSERT_EQ(got[i], e) << "element " << i;
  }
}
INSTANTIATE_TEST_SUITE_P(Gguf, GgufQuants, ::testing::Values("q8_0", "q4_0", "f16"));

// K-quant super-blocks built from per-element quants and per-sub-block scales by the layout in
// ggml's block definitions, then decoded by the traits table.
struct KBlockInput {
  float d = 0.5f, dmin = 0.25f;  // exact in fp16
  uint8_t scale[16] = {}, min[8] = {};
  uint8_t q[kQK_K] = {};
};

KBlockInput random_input(int q_bits, int scale_bits, uint32_t seed) {
  std::mt19937 rng(seed);
  KBlockInput in;
  for (auto& s : in.scale) s = uint8_t(rng() % (1u << scale_bits));
  for (auto& m : in.min) m = uint8_t(rng() % 64);
  for (auto& q : in.q) q = uint8_t(rng() % (1u << q_bits));
  return in;
}

// Packs 8 six-bit (scale, min) pairs the way k_quant_scale_min reads them back.
void pack_scales(const KBlockInput& in, uint8_t* out) {
  for (int j = 0; j < 4; ++j) {
    out[j] = uint8_t((in.scale[j] & 63) | ((in.scale[j + 4] >> 4) << 6));
    out[j + 4] = uint8_t((in.min[j] & 63) | ((in.min[j + 4] >> 4) << 6));
    out[j + 8] = uint8_t((in.scale[j + 4] & 15) | ((in.min[j + 4] & 15) << 4));
  }
}

std::vector<float> decode(GgmlType type, const void* block) {
  std::vector<float> out(kQK_K);
  ggml_type_traits(type).dequantize(block, 1, out.data());
  return out;
}

TEST(GgufKQuants, Q4_K) {
  const KBlockInput in = random_input(4, 6, 1);
  BlockQ4_K b{};
  b.d = f32_to_f16(in.d);
  b.dmin = f32_to_f16(in.dmin);
  pack_scales(in, b.scales);
  for (int e = 0; e < kQK_K; ++e) {  // sub-block s: low nibbles (s even) or high (s odd) of 32 bytes
    const int s = e / 32, l = e % 32;
    b.qs[(s / 2) * 32 + l] |= uint8_t(in.q[e] << (s % 2 ? 4 : 0));
  }
  const auto got = decode(GgmlType::Q4_K, &b);
  for (int e = 0; e < kQK_K; ++e) {
    const int s = e / 32;
    EXPECT_FLOAT_EQ(got[e], in.d * in.scale[s] * in.q[e] - in.dmin * in.min[s]) << e;
  }
}

TEST(GgufKQuants, Q5_K) {
  const KBlockInput in = random_input(5, 6, 2);
  BlockQ5_K b{};
  b.d = f32_to_f16(in.d);
  b.dmin = f32_to_f16(in.dmin);
  pack_scales(in, b.scales);
  for (int e = 0; e < kQK_K; ++e) {  // as Q4_K, plus bit s of qh[l] for the fifth bit
    const int s = e / 32, l = e % 32;
    b.qs[(s / 2) * 32 + l] |= uint8_t((in.q[e] & 15) << (s % 2 ? 4 : 0));
    b.qh[l] |= uint8_t((in.q[e] >> 4) << s);
  }
  const auto got = decode(GgmlType::Q5_K, &b);
  for (int e = 0; e < kQK_K; ++e) {
    const int s = e / 32;
    EXPECT_FLOAT_EQ(got[e], in.d * in.scale[s] * in.q[e] - in.dmin * in.min[s]) << e;
  }
}

TEST(GgufKQuants, Q6_K) {
  KBlockInput in = random_input(6, 7, 3);
  int8_t scales[16];
  for (int i = 0; i < 16; ++i) scales[i] = int8_t(int(in.scale[i]) - 64);  // signed 8-bit scales
  BlockQ6_K b{};
  b.d = f32_to_f16(in.d);
  std::memcpy(b.scales, scales, 16);
  for (int e = 0; e < kQK_K; ++e) {
    // Half h of 128; run g of 32 in it: low (g 0,1) or high (g 2,3) nibbles of ql bytes
    // 64h + 32*(g%2) + l, and bits 2g..2g+1 of qh[32h + l].
    const int h = e / 128, g = (e % 128) / 32, l = e % 32;
    b.ql[64 * h + 32 * (g % 2) + l] |= uint8_t((in.q[e] & 15) << (g >= 2 ? 4 : 0));
    b.qh[32 * h + l] |= uint8_t((in.q[e] >> 4) << (2 * g));
  }
  const auto got = decode(GgmlType::Q6_K, &b);
  for (int e = 0; e < kQK_K; ++e) {
    const int h = e / 128, g = (e % 128) / 32, l = e % 32;
    const int scale = scales[8 * h + 2 * g + l / 16];
    EXPECT_FLOAT_EQ(got[e], in.d * float(scale) * float(int(in.q[e]) - 32)) << e;
  }
}

TEST(GgufKQuants, BlockSizesMatchGgml) {
  EXPECT_EQ(ggml_type_traits(GgmlType::Q4_K).block_bytes, 144);
  EXPECT_EQ(ggml_type_traits(GgmlType::Q6_K).block_elems, 256);
  EXPECT_EQ(ggml_type_traits(uint32_t(99)), nullptr);
}

// ---------------------------------------------------------------------------- models

std::vector<int32_t> sample_ids(const Tokenizer& tok) {
  const std::string text = read_text_file(kShared / "data" / "text" / "sotu-test.txt").value().substr(0, 4000);
  return tok.encode(text, AddSpecial::No);
}

std::vector<float> logits_of(const fs::path& model_path, const std::vector<int32_t>& ids, int64_t n) {
  CpuBackend backend(2);
  auto model = load_model(model_path, backend, {n, n});
  EXPECT_TRUE(model.ok()) << model.error().message;
  if (!model.ok()) return {};
  KvCache cache = model.value()->make_cache(n);
  std::vector<float> logits(size_t(n * model.value()->config().vocab_size));
  model.value()->forward(ids.data(), n, 0, cache, LogitRows::All, logits.data());
  return logits;
}

class GgufModels : public ::testing::TestWithParam<std::string> {};

// The same weights through GGUF (renamed, Q/K un-permuted, transposed back) give the same logits
// and the GGUF tokenizer the same ids.
TEST_P(GgufModels, MatchesSafetensors) {
  const std::string name = GetParam();
  const fs::path gguf = converted(name, name == "sotu-llama" ? "f32" : "bf16");
  auto hf_tok = Tokenizer::load(model_dir(name));
  auto gguf_tok = Tokenizer::load(gguf);
  ASSERT_TRUE(hf_tok.ok()) << hf_tok.error().message;
  ASSERT_TRUE(gguf_tok.ok()) << gguf_tok.error().message;
  const auto ids = sample_ids(*hf_tok.value());
  EXPECT_EQ(gguf_tok.value()->encode("A test <|endoftext|> of 2024 things", AddSpecial::Yes),
            hf_tok.value()->encode("A test <|endoftext|> of 2024 things", AddSpecial::Yes));
  ASSERT_EQ(sample_ids(*gguf_tok.value()), ids);
  EXPECT_EQ(gguf_tok.value()->decode(ids), hf_tok.value()->decode(ids));

  const int64_t n = 48;
  const auto want = logits_of(model_dir(name), ids, n);
  const auto got = logits_of(gguf, ids, n);
  ASSERT_EQ(got.size(), want.size());
  float worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]) / std::max(1.0f, std::abs(want[i])));
  EXPECT_LE(worst, 1e-5f);
}
INSTANTIATE_TEST_SUITE_P(Gguf, GgufModels, ::testing::Values("sotu-llama", "sotu-qwen2", "sotu-gpt2"));

double perplexity_of(const fs::path& model) {
  EngineOptions options;
  options.model_dir = model;
  options.backend.threads = 2;
  auto engine = Engine::open(options);
  EXPECT_TRUE(engine.ok()) << engine.error().message;
  if (!engine.ok()) return 0;
  const std::string text = read_text_file(kShared / "data" / "text" / "sotu-test.txt").value().substr(0, 12000);
  const auto ids = engine.value()->tokenizer().encode(text, AddSpecial::No);
  auto result = perplexity(*engine.value(), ids, 256);
  EXPECT_TRUE(result.ok());
  return result.ok() ? result.value().ppl : 0;
}

TEST(GgufPerplexity, Q8_0WithinOnePercent) {
  const double original = perplexity_of(model_dir("sotu-llama"));
  const double q8 = perplexity_of(converted("sotu-llama", "q8_0"));
  EXPECT_LT(std::abs(q8 / original - 1), 0.01) << q8 << " vs " << original;
  const double q4 = perplexity_of(converted("sotu-llama", "q4_0"));
  EXPECT_LT(std::abs(q4 / original - 1), 0.25) << q4 << " vs " << original;  // coarse, but not broken
  std::printf("perplexity: safetensors %.4f, Q8_0 %.4f, Q4_0 %.4f\n", original, q8, q4);
}

// A SentencePiece vocabulary (tokenizer.ggml.model = llama) rebuilt from scores encodes as
// libsentencepiece does on the original tokenizer.model.
TEST(GgufTokenizer, SentencePieceVocabulary) {
  const fs::path spm_dir = model_dir("llama2-tokenizer");
  const fs::path gguf = kWork / "llama2-tokenizer.gguf";
  fs::create_directories(kWork);
  const std::string cmd = "python3 " + std::string(BRISK_GGUF_WRITER) + " spm " + (spm_dir / "tokenizer.model").string() + " " + gguf.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto reference = Tokenizer::load(spm_dir);
  auto tok = Tokenizer::load(gguf);
  ASSERT_TRUE(reference.ok()) << reference.error().message;
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  const std::string text = read_text_file(kShared / "data" / "text" / "sotu-test.txt").value().substr(0, 3000);
  for (const std::string& s : {std::string("Hello world"), std::string("  two  spaces, ünïcödé 日本語 ☃ 12345"), text}) {
    const auto want = reference.value()->encode(s, AddSpecial::Yes);
    EXPECT_EQ(tok.value()->encode(s, AddSpecial::Yes), want) << s.substr(0, 60);
    EXPECT_EQ(tok.value()->decode(want, true), reference.value()->decode(want, true));
  }
}

// ---------------------------------------------------------------------------- corrupt files

// A minimal GGUF built byte by byte: one KV and one F32 tensor of 8 elements.
struct TinyGguf {
  uint32_t magic = 0x46554747, version = 3, type = 0;
  uint64_t offset = 0, elements = 8;
  std::optional<int32_t> alignment;  // a general.alignment KV (int32) when set
  std::string bytes() const {
    std::string b;
    auto put = [&](const auto& v) { b.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
    auto put_string = [&](const std::string& s) { put(uint64_t(s.size())); b += s; };
    put(magic);
    put(version);
    put(uint64_t(1));
    put(uint64_t(alignment ? 2 : 1));
    put_string("general.architecture"); put(uint32_t(8)); put_string("llama");
    if (alignment) {
      put_string("general.alignment");
      put(uint32_t(5));
      put(*alignment);
    }
    put_string("weights"); put(uint32_t(1)); put(elements); put(type); put(offset);
    b.resize((b.size() + 31) / 32 * 32, '\0');
    b.append(32, '\1');
    return b;
  }
};

std::string open_error(const std::string& bytes) {
  const fs::path p = fs::temp_directory_path() / ("brisk-gguf-" + std::to_string(::getpid()) + ".gguf");
  write_bytes(p, bytes);
  auto file = GgufFile::open(p);
  fs::remove(p);
  return file.ok() ? "" : file.error().message;
}

TEST(GgufErrors, NameTheFieldAtFault) {
  EXPECT_EQ(open_error(TinyGguf{}.bytes()), "");
  TinyGguf bad_magic;
  bad_magic.magic = 0x12345678;
  EXPECT_HAS(open_error(bad_magic.bytes()), "bad magic");
  TinyGguf old;
  old.version = 2;
  EXPECT_HAS(open_error(old.bytes()), "unsupported GGUF version 2");
  EXPECT_HAS(open_error(TinyGguf{}.bytes().substr(0, 30)), "truncated");
  TinyGguf big;
  big.elements = 64;
  EXPECT_HAS(open_error(big.bytes()), "tensor 'weights'");
  EXPECT_HAS(open_error(big.bytes()), "past the end");
  TinyGguf unknown;
  unknown.type = 99;
  EXPECT_HAS(open_error(unknown.bytes()), "tensor 'weights' has unknown ggml type 99");
  TinyGguf misaligned;
  misaligned.offset = 4;
  EXPECT_HAS(open_error(misaligned.bytes()), "not a multiple of the alignment");
  EXPECT_HAS(open_error(misaligned.bytes()), "brisk-gguf-");  // the file is named
  // general.alignment is checked before the file's mapping is kept: its error once read the
  // path from the not yet set mapping (SIGSEGV).
  for (const int32_t alignment : {0, -32, 48, 1 << 21}) {
    TinyGguf bad_alignment;
    bad_alignment.alignment = alignment;
    const std::string error = open_error(bad_alignment.bytes());
    EXPECT_HAS(error, "brisk-gguf-");
    EXPECT_HAS(error, "general.alignment");
  }
  TinyGguf aligned;
  aligned.alignment = 32;
  EXPECT_EQ(open_error(aligned.bytes()), "");
}

// general.alignment may be 1 (the spec asks only for a power of two), so an F16 tensor can start
// at an odd address: its decode read it through uint16_t pointers (undefined behaviour, found by
// fuzz/gguf_fuzzer under UBSan). Data offsets 1 and 2 put it at an odd and an even address.
TEST(GgufErrors, TensorsAtAnyAddressDecode) {
  const fs::path p = fs::temp_directory_path() / ("brisk-gguf-odd-" + std::to_string(::getpid()) + ".gguf");
  for (const uint64_t offset : {1, 2}) {
    TinyGguf tiny;
    tiny.alignment = 1;
    tiny.type = 1;  // F16
    tiny.offset = offset;
    std::string bytes = tiny.bytes();
    // Varied bytes after the tensor info (name, n_dims, ne[0], type, offset): the data section.
    const size_t data_start = bytes.find("weights") + 7 + 4 + 8 + 4 + 8;
    for (size_t i = data_start; i < bytes.size(); ++i) bytes[i] = char(0x30 + i % 7);
    write_bytes(p, bytes);
    auto file = GgufFile::open(p);
    ASSERT_TRUE(file.ok()) << file.error().message;
    const GgufTensorInfo& t = file.value()->tensors().at(0);
    std::vector<float> decoded(size_t(t.numel()));
    ASSERT_TRUE(file.value()->dequantize(t, decoded.data()).ok());
    for (size_t i = 0; i < decoded.size(); ++i) {
      uint16_t half;
      std::memcpy(&half, t.data + 2 * i, 2);
      EXPECT_EQ(decoded[i], f16_to_f32(half)) << "offset " << offset << " element " << i;
      EXPECT_NE(decoded[i], 0.0f);
    }
  }
  fs::remove(p);
}

TEST(GgufErrors, ModelErrorsNameKeyAndFile) {
  const fs::path p = fs::temp_directory_path() / ("brisk-gguf-model-" + std::to_string(::getpid()) + ".gguf");
  write_bytes(p, TinyGguf{}.bytes());
  CpuBackend backend(1);
  auto model = load_model(p, backend, {8, 0});
  ASSERT_FALSE(model.ok());
  EXPECT_HAS(model.error().message, p.string());
  EXPECT_HAS(model.error().message, "token_embd.weight");
  auto tok = Tokenizer::load(p);
  ASSERT_FALSE(tok.ok());
  EXPECT_HAS(tok.error().message, "tokenizer.ggml.model");
  fs::remove(p);
}

// Truncations and flipped bytes anywhere in the header of a real file give errors or a file that
// still loads; never a crash (run under ASan/UBSan this also proves no out-of-bounds read).
TEST(GgufErrors, TruncatedAndFlippedFilesNeverCrash) {
  const std::string whole = read_bytes(converted("sotu-qwen2", "bf16"));
  ASSERT_TRUE(GgufFile::open(converted("sotu-qwen2", "bf16")).ok());
  const fs::path p = fs::temp_directory_path() / ("brisk-gguf-fuzz-" + std::to_string(::getpid()) + ".gguf");
  std::mt19937 rng(7);
  // The header (KVs with the vocabulary, tensor infos) is the first ~10% of this file.
  const size_t span = std::min(whole.size(), size_t(400000));
  for (int i = 0; i < 150; ++i) {
    const size_t cut = rng() % span;
    write_bytes(p, whole.substr(0, cut));
    auto f = GgufFile::open(p);
    EXPECT_FALSE(f.ok()) << "truncated at " << cut;
  }
  for (int i = 0; i < 150; ++i) {
    std::string bytes = whole.substr(0, span);
    for (int k = 0; k < 4; ++k) bytes[rng() % span] ^= char(1 << (rng() % 8));
    write_bytes(p, bytes);
    auto f = GgufFile::open(p);  // usually an error (data past the end); must not crash
    if (f.ok()) {
      (void)gguf_model_config(*f.value());
    }
    (void)Tokenizer::load(p);
  }
  fs::remove(p);
}

}  // namespace
}  // namespace brisk
