// What BPE and WordPiece tokenizer.json files share: the pipeline around the model (added tokens,
// normalizer, pre-tokenizer, post-processor template, decoder), the id <-> token lookups and
// tokenizer_config.json's BOS/EOS. A subclass adds its model's encode(). `Model` provides size(),
// id_to_token(id) (null past the vocabulary) and token_to_id(token).
#pragma once

#include <algorithm>
#include <nlohmann/json.hpp>

#include "tokenizer/added_vocabulary.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/token_decoder.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace brisk {

// Every tokenizer.json component but the model.
struct TokenizerPipeline {
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  TokenDecoder decoder;
  std::vector<AddedToken> added;
  SpecialTokenTemplate specials;
};
// Parses them from a tokenizer.json document; `prefix` starts every error message.
Result<TokenizerPipeline> parse_tokenizer_pipeline(const nlohmann::json& root, const std::string& prefix);

template <class Model>
class VocabTokenizer : public Tokenizer {
 public:
  // Takes BOS/EOS from tokenizer_config.json, whose add_bos_token/add_eos_token (when present)
  // decide whether encoding adds them, as transformers rebuilds the template from them.
  Status apply_config(const TokenizerConfig& config, const std::string& where) {
    auto lookup = [this](std::string_view token) { return token_to_id(token); };
    BRISK_ASSIGN(ids, apply_tokenizer_config(config, lookup, specials_, where));
    bos_id_ = ids.bos;
    eos_id_ = ids.eos;
    return ok_status();
  }

  std::string token_bytes(int32_t id, int32_t previous) const override {
    const AddedToken* added = added_.find(id);
    const std::string* spelling = added ? &added->content : model_.id_to_token(id);
    // Ids past the vocabulary (models pad their embedding tables) decode to nothing.
    if (spelling == nullptr) return {};
    return decoder_.decode(*spelling, previous < 0);
  }
  int32_t vocab_size() const override { return vocab_size_; }
  bool is_special(int32_t id) const override {
    const AddedToken* added = added_.find(id);
    return added != nullptr && added->special;
  }
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    if (const auto id = added_.find(token)) return id;
    return model_.token_to_id(token);
  }

 protected:
  VocabTokenizer(Model model, TokenizerPipeline parts)
      : model_(std::move(model)),
        normalizer_(std::move(parts.normalizer)),
        pre_tokenizer_(std::move(parts.pre_tokenizer)),
        decoder_(std::move(parts.decoder)),
        added_(std::move(parts.added), normalizer_),
        specials_(std::move(parts.specials)),
        vocab_size_(std::max(model_.size(), added_.id_limit())) {}

  Model model_;
  Normalizer normalizer_;
  PreTokenizer pre_tokenizer_;
  TokenDecoder decoder_;
  AddedVocabulary added_;  // after normalizer_: built from it
  SpecialTokenTemplate specials_;
  int32_t vocab_size_ = 0;
};

}  // namespace brisk
