// Sentence embeddings and sequence classification with encoder models (BERT): one forward pass
// over a whole sequence from position 0, then pooling on the host. Pooling and normalization
// default to what the model folder's sentence-transformers files say (modules.json,
// 1_Pooling/config.json), as sentence-transformers itself would apply them.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "runtime/engine.h"

namespace brisk {

enum class Pooling { Mean, Cls, Last };
const char* pooling_name(Pooling p);
Result<Pooling> parse_pooling(const std::string& name);  // mean, cls, last

struct PoolingConfig {
  Pooling pooling = Pooling::Mean;
  bool normalize = false;  // L2-normalize the pooled vector
};
// From the folder's sentence-transformers modules (1_Pooling/config.json's pooling_mode_*
// flags; a Normalize module in modules.json); without them mean for encoders and the last token
// for decoders (`decoder`), unnormalized.
// Pooling modes brisk does not implement (max, weighted mean, ...) are errors naming the file.
// A .gguf file: its {arch}.pooling_type (mean, cls, last; else the fallback), normalized (GGUF does
// not record Normalize; llama.cpp normalizes by default).
Result<PoolingConfig> read_pooling_config(const std::filesystem::path& model_dir, Pooling fallback = Pooling::Mean);
// The fallback for a model: mean for encoders, the last token for decoders.
Pooling default_pooling(const Model& model);

struct Embedding {
  std::vector<float> vector;  // [hidden]
  int64_t tokens = 0;         // sequence length, special tokens included
};
// The model's last hidden states of `tokens` pooled: an encoder's, or a decoder's final norm output
// (an engine opened with decoder_output HiddenStates; last-token pooling is the usual choice).
// Errors: a model that does not output hidden states, an empty sequence, one longer than the context.
Result<Embedding> embed(Engine& engine, const std::vector<int32_t>& tokens, const PoolingConfig& pooling);

struct Classification {
  std::vector<float> logits;          // [labels]
  std::vector<float> probabilities;   // softmax of the logits
  std::vector<std::string> labels;    // id2label names, by id
  int64_t tokens = 0;
};
Result<Classification> classify(Engine& engine, const std::vector<int32_t>& tokens);

// The model's tokens for a text: the tokenizer's special tokens added, then checked against the
// context (an error names both lengths).
Result<std::vector<int32_t>> encoder_tokens(Engine& engine, const std::string& text);

}  // namespace brisk
