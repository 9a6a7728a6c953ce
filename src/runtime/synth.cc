#include "runtime/synth.h"

#include <cmath>
#include <fstream>
#include <map>

#include "core/splitmix64.h"
#include "formats/json_file.h"
#include "formats/safetensors.h"
#include "models/model.h"

namespace brisk {

namespace fs = std::filesystem;

namespace {

// config.json of each published model (only the fields brisk and transformers need).
const std::map<std::string, Json>& shapes() {
  static const std::map<std::string, Json> table = {
      {"tinyllama-1.1b",
       {{"model_type", "llama"}, {"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 2048},
        {"intermediate_size", 5632}, {"num_hidden_layers", 22}, {"num_attention_heads", 32},
        {"num_key_value_heads", 4}, {"vocab_size", 32000}, {"max_position_embeddings", 2048},
        {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0}, {"hidden_act", "silu"},
        {"tie_word_embeddings", false}, {"bos_token_id", 1}, {"eos_token_id", 2}}},
      {"llama3-8b",
       {{"model_type", "llama"}, {"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 4096},
        {"intermediate_size", 14336}, {"num_hidden_layers", 32}, {"num_attention_heads", 32},
        {"num_key_value_heads", 8}, {"vocab_size", 128256}, {"max_position_embeddings", 131072},
        {"rms_norm_eps", 1e-5}, {"rope_theta", 500000.0}, {"hidden_act", "silu"},
        {"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}}},
        {"tie_word_embeddings", false}, {"bos_token_id", 128000}, {"eos_token_id", 128001}}},
      {"qwen2.5-0.5b",
       {{"model_type", "qwen2"}, {"architectures", {"Qwen2ForCausalLM"}}, {"hidden_size", 896},
        {"intermediate_size", 4864}, {"num_hidden_layers", 24}, {"num_attention_heads", 14},
        {"num_key_value_heads", 2}, {"vocab_size", 151936}, {"max_position_embeddings", 32768},
        {"rms_norm_eps", 1e-6}, {"rope_theta", 1000000.0}, {"hidden_act", "silu"},
        {"tie_word_embeddings", true}, {"use_sliding_window", false},
        {"bos_token_id", 151643}, {"eos_token_id", 151643}}},
      {"qwen2.5-1.5b",
       {{"model_type", "qwen2"}, {"architectures", {"Qwen2ForCausalLM"}}, {"hidden_size", 1536},
        {"intermediate_size", 8960}, {"num_hidden_layers", 28}, {"num_attention_heads", 12},
        {"num_key_value_heads", 2}, {"vocab_size", 151936}, {"max_position_embeddings", 32768},
        {"rms_norm_eps", 1e-6}, {"rope_theta", 1000000.0}, {"hidden_act", "silu"},
        {"tie_word_embeddings", true}, {"use_sliding_window", false},
        {"bos_token_id", 151643}, {"eos_token_id", 151643}}},
      // An encoder for the embeddings path (brisk embed, /v1/embeddings) in tests and benchmarks.
      {"bert-mini",
       {{"model_type", "bert"}, {"architectures", {"BertModel"}}, {"hidden_size", 128},
        {"num_hidden_layers", 2}, {"num_attention_heads", 2}, {"intermediate_size", 512},
        {"vocab_size", 1024}, {"max_position_embeddings", 512}, {"type_vocab_size", 2},
        {"layer_norm_eps", 1e-12}, {"hidden_act", "gelu"}}},
      {"gpt2-124m",
       {{"model_type", "gpt2"}, {"architectures", {"GPT2LMHeadModel"}}, {"n_embd", 768},
        {"n_layer", 12}, {"n_head", 12}, {"n_positions", 1024}, {"vocab_size", 50257},
        {"layer_norm_epsilon", 1e-5}, {"activation_function", "gelu_new"},
        {"tie_word_embeddings", true}, {"bos_token_id", 50256}, {"eos_token_id", 50256}}},
  };
  return table;
}

// One SplitMix64 stream per tensor keeps the output independent of the order tensors are written.
struct Rng {
  SplitMix64 bits;
  uint64_t next() { return bits.next(); }
  // Approximately normal (sum of four uniforms), mean 0, std 1: plenty for benchmark weights.
  float normal() {
    uint64_t r = next();
    float s = 0;
    for (int i = 0; i < 4; ++i) s += float((r >> (16 * i)) & 0xffff) * (1.0f / 65536.0f);
    return (s - 2.0f) * 1.7320508f;  // var of a sum of 4 U(0,1) is 1/3
  }
};

uint64_t name_hash(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

void fill(Tensor& t, const std::string& name, uint64_t seed, float mean, float std) {
  Rng rng{{name_hash(name, seed)}};
  const size_t n = size_t(t.numel());
  for (size_t i = 0; i < n; ++i) {
    float v = mean + std * rng.normal();
    switch (t.dtype) {
      case DType::F32: t.as<float>()[i] = v; break;
      case DType::BF16: t.as<uint16_t>()[i] = f32_to_bf16(v); break;
      default: t.as<uint16_t>()[i] = f32_to_f16(v); break;
    }
  }
}

// A byte-level BPE tokenizer with no merges: every byte is a token; the rest of the model's
// vocabulary holds placeholder tokens so any id decodes.
Json byte_level_tokenizer(int64_t vocab_size, int64_t eos_id) {
  // GPT-2's byte-to-unicode table: printable bytes map to themselves, the rest to U+0100 onwards.
  Json vocab = Json::object();
  int next_extra = 0;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    uint32_t cp = printable ? uint32_t(b) : uint32_t(256 + next_extra++);
    std::string utf8;
    if (cp < 0x80) {
      utf8 += char(cp);
    } else {
      utf8 += char(0xc0 | (cp >> 6));
      utf8 += char(0x80 | (cp & 0x3f));
    }
    vocab[utf8] = b;
  }
  for (int64_t id = 256; id < vocab_size; ++id)
    if (id != eos_id) vocab["<synth_" + std::to_string(id) + ">"] = id;
  Json added = Json::array();
  if (eos_id >= 0 && eos_id < vocab_size) {
    vocab["<|endoftext|>"] = eos_id;
    added.push_back({{"id", eos_id}, {"content", "<|endoftext|>"}, {"single_word", false},
                     {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
          {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                     {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                     {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                     {"vocab", vocab}, {"merges", Json::array()}}}};
}

Status write_text(const fs::path& path, const std::string& text) { return write_text_file(path, text); }

constexpr uint64_t kShardBytes = 4ull << 30;  // shard like transformers does for big models

}  // namespace

std::vector<std::string> synth_shape_names() {
  std::vector<std::string> names;
  for (const auto& [name, _] : shapes()) names.push_back(name);
  return names;
}

Status synthesize_model(const SynthOptions& o, const std::function<void(uint64_t, uint64_t)>& progress) {
  auto it = shapes().find(o.shape);
  if (it == shapes().end()) {
    std::string names;
    for (const auto& n : synth_shape_names()) names += (names.empty() ? "" : ", ") + n;
    return make_error("unknown --shape '" + o.shape + "' (known: " + names + ")");
  }
  if (o.dtype != DType::BF16 && o.dtype != DType::F16 && o.dtype != DType::F32)
    return make_error("--dtype must be bf16, f16 or f32");
  std::error_code ec;
  if (fs::exists(o.out) && !fs::is_empty(o.out, ec))
    return make_error(o.out.string() + ": output folder exists and is not empty");
  fs::create_directories(o.out, ec);
  if (ec) return make_error(o.out.string() + ": cannot create: " + ec.message());

  Json config = it->second;
  config["torch_dtype"] = o.dtype == DType::F32 ? "float32" : o.dtype == DType::F16 ? "float16" : "bfloat16";
  BRISK_ASSIGN(cfg, parse_model_config(config, o.shape));

  // Walk the architecture's own tensor list (the same one loading uses) to get names and shapes.
  std::vector<TensorSpec> specs;
  for (const TensorSpec& spec : cfg.arch->tensors(cfg))
    if (spec.presence == Presence::Required) specs.push_back(spec);
  uint64_t total = 0;
  for (const auto& s : specs) {
    uint64_t n = 1;
    for (int64_t d : s.shape) n *= uint64_t(d);
    total += n * dtype_size(o.dtype);
  }

  // Group tensors into shards, generate and write one shard at a time to bound memory.
  std::vector<std::vector<const TensorSpec*>> shards(1);
  uint64_t shard_bytes = 0, written = 0;
  for (const auto& s : specs) {
    uint64_t n = 1;
    for (int64_t d : s.shape) n *= uint64_t(d);
    if (shard_bytes > 0 && shard_bytes + n * dtype_size(o.dtype) > kShardBytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&s);
    shard_bytes += n * dtype_size(o.dtype);
  }
  Json weight_map = Json::object();
  for (size_t si = 0; si < shards.size(); ++si) {
    const std::string file = shards.size() == 1 ? "model.safetensors"
                             : "model-" + std::string(5 - std::to_string(si + 1).size(), '0') + std::to_string(si + 1) +
                                   "-of-" + std::string(5 - std::to_string(shards.size()).size(), '0') +
                                   std::to_string(shards.size()) + ".safetensors";
    std::vector<std::vector<uint8_t>> storage;
    std::vector<NamedTensor> tensors;
    for (const TensorSpec* s : shards[si]) {
      Tensor t{nullptr, o.dtype, s->shape};
      storage.emplace_back(t.nbytes());
      t.data = storage.back().data();
      const bool is_bias = s->kind == TensorKind::Vector && s->part == Part::Bias;
      const bool is_norm_weight = s->kind == TensorKind::Vector && !is_bias;
      fill(t, s->name, o.seed, is_norm_weight ? 1.0f - s->load_offset : 0.0f, is_bias ? 0.01f : is_norm_weight ? 0.05f : 0.02f);
      tensors.push_back({s->name, t});
      weight_map[s->name] = file;
      written += t.nbytes();
      if (progress) progress(written, total);
    }
    BRISK_TRY(write_safetensors(o.out / file, tensors, {{"format", "pt"}}));
  }
  if (shards.size() > 1) {
    Json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    BRISK_TRY(write_text(o.out / "model.safetensors.index.json", index.dump(2)));
  }
  const int64_t eos = cfg.eos_ids.empty() ? -1 : cfg.eos_ids[0];
  BRISK_TRY(write_text(o.out / "config.json", config.dump(2)));
  BRISK_TRY(write_text(o.out / "tokenizer.json", byte_level_tokenizer(cfg.vocab_size, eos).dump()));
  Json tok_config = {{"eos_token", eos >= 0 ? Json("<|endoftext|>") : Json()}, {"bos_token", nullptr},
                     {"model_max_length", cfg.max_position}};
  BRISK_TRY(write_text(o.out / "tokenizer_config.json", tok_config.dump(2)));
  return ok_status();
}

}  // namespace brisk
