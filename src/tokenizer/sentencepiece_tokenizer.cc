#include "tokenizer/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include "tokenizer/token_decoder.h"
#include "tokenizer/utf8.h"

namespace brisk {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581, SentencePiece's space
// sentencepiece renders an unknown piece as " ⁇ " when decoding.
constexpr std::string_view kUnknownSurface = " \xE2\x81\x87 ";

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> sp)
    : sp_(std::move(sp)) {
  if (sp_->bos_id() >= 0) bos_id_ = sp_->bos_id();
  if (sp_->eos_id() >= 0) eos_id_ = sp_->eos_id();
  add_bos_ = bos_id_.has_value();
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

Result<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::load(
    const std::filesystem::path& file) {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = sp->Load(file.string());
  if (!status.ok()) {
    return make_error(file.string() + ": cannot load SentencePiece model: " + status.ToString());
  }
  return std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer(std::move(sp)));
}

Status SentencePieceTokenizer::apply_config(const TokenizerConfig& config, const std::string& where) {
  if (config.bos_token) {
    bos_id_ = token_to_id(*config.bos_token);
    if (!bos_id_) return make_error(where + "bos_token: '" + *config.bos_token + "' is not a piece");
  }
  if (config.eos_token) {
    eos_id_ = token_to_id(*config.eos_token);
    if (!eos_id_) return make_error(where + "eos_token: '" + *config.eos_token + "' is not a piece");
  }
  if (config.add_bos_token) add_bos_ = *config.add_bos_token;
  if (config.add_eos_token) add_eos_ = *config.add_eos_token;
  return ok_status();
}

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text, AddSpecial add_special) const {
  std::vector<int> pieces;
  const std::string input = utf8::repair(text);
  const auto status = sp_->Encode(input, &pieces);
  // Encode only fails on an unloaded model, which load() rules out.
  BRISK_CHECK(status.ok(), "sentencepiece Encode failed: " + status.ToString());
  std::vector<int32_t> ids;
  ids.reserve(pieces.size() + 2);
  if (add_special == AddSpecial::Yes && add_bos_ && bos_id_) ids.push_back(*bos_id_);
  ids.insert(ids.end(), pieces.begin(), pieces.end());
  if (add_special == AddSpecial::Yes && add_eos_ && eos_id_) ids.push_back(*eos_id_);
  return ids;
}

std::string SentencePieceTokenizer::token_bytes(int32_t id, int32_t previous) const {
  if (id < 0 || id >= sp_->GetPieceSize()) return {};
  if (sp_->IsControl(id)) return {};  // <s>, </s> have no surface form
  if (sp_->IsUnknown(id)) return std::string(kUnknownSurface);
  const std::string& piece = sp_->IdToPiece(id);
  if (sp_->IsByte(id)) {
    const int value = byte_token_value(piece);  // byte pieces are spelled <0xAB>
    return value < 0 ? std::string() : std::string(1, static_cast<char>(value));
  }
  std::string text;
  text.reserve(piece.size());
  for (size_t pos = 0; pos < piece.size();) {
    if (piece.compare(pos, kSpaceMarker.size(), kSpaceMarker) == 0) {
      text.push_back(' ');
      pos += kSpaceMarker.size();
    } else {
      text.push_back(piece[pos++]);
    }
  }
  // sentencepiece drops the dummy-prefix space of the first piece of the output; BOS before it
  // produces no text, so the piece after a leading BOS counts as first too.
  const bool first = previous < 0 || (bos_id_ && previous == *bos_id_);
  if (first && !text.empty() && text.front() == ' ') text.erase(0, 1);
  return text;
}

int32_t SentencePieceTokenizer::vocab_size() const { return sp_->GetPieceSize(); }

bool SentencePieceTokenizer::is_special(int32_t id) const {
  return id >= 0 && id < sp_->GetPieceSize() && sp_->IsControl(id);
}

std::optional<int32_t> SentencePieceTokenizer::token_to_id(std::string_view token) const {
  const int id = sp_->PieceToId(std::string(token));
  // PieceToId answers unk_id for anything unknown; only the unk piece itself maps there.
  if (id == sp_->unk_id() && sp_->IdToPiece(id) != token) return std::nullopt;
  return id;
}

}  // namespace brisk
