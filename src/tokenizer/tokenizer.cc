#include "tokenizer/tokenizer.h"

#include "core/mapped_file.h"
#include "formats/gguf.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/gguf_tokenizer.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "tokenizer/tokenizer_config.h"
#include "tokenizer/utf8.h"
#include "tokenizer/wordpiece_tokenizer.h"

namespace brisk {

Result<std::unique_ptr<Tokenizer>> Tokenizer::load(const std::filesystem::path& model_dir) {
  if (is_gguf_path(model_dir)) return load_gguf_tokenizer(model_dir);
  BRISK_ASSIGN(config, read_tokenizer_config(model_dir));
  const std::string config_where = (model_dir / "tokenizer_config.json").string() + ": ";
  const std::filesystem::path json_file = model_dir / "tokenizer.json";
  const std::filesystem::path model_file = model_dir / "tokenizer.model";
  if (path_exists(json_file)) {
    BRISK_ASSIGN(root, json_fields::read_file(json_file));
    const std::string prefix = json_file.string() + ": ";
    if (is_wordpiece_json(root)) {
      BRISK_ASSIGN(tokenizer, WordPieceTokenizer::from_json(root, prefix));
      BRISK_TRY(tokenizer->apply_config(config, config_where));
      return std::unique_ptr<Tokenizer>(std::move(tokenizer));
    }
    BRISK_ASSIGN(tokenizer, BpeTokenizer::from_json(root, prefix));
    BRISK_TRY(tokenizer->apply_config(config, config_where));
    return std::unique_ptr<Tokenizer>(std::move(tokenizer));
  }
  if (path_exists(model_file)) {
    BRISK_ASSIGN(tokenizer, SentencePieceTokenizer::load(model_file));
    BRISK_TRY(tokenizer->apply_config(config, config_where));
    return std::unique_ptr<Tokenizer>(std::move(tokenizer));
  }
  return make_error(model_dir.string() + ": no tokenizer.json or tokenizer.model found");
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string bytes;
  int32_t previous = -1;
  for (const int32_t id : ids) {
    if (skip_special && is_special(id)) continue;
    bytes += token_bytes(id, previous);
    previous = id;
  }
  return utf8::repair(bytes);
}

}  // namespace brisk
