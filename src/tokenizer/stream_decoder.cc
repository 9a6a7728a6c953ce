#include "tokenizer/stream_decoder.h"

#include "tokenizer/utf8.h"

namespace brisk {

size_t complete_utf8_prefix(const std::string& s) {
  // Only the last character can be unfinished, and a character spans at most 4 bytes: find the
  // lead byte among the last few and hold it back if its sequence could still be completed.
  const size_t lookback = s.size() < 4 ? s.size() : 4;
  for (size_t back = 1; back <= lookback; ++back) {
    const size_t pos = s.size() - back;
    const auto byte = static_cast<unsigned char>(s[pos]);
    if ((byte & 0xC0) == 0x80) continue;  // a continuation byte: keep looking for its lead
    return utf8::is_incomplete_prefix(s, pos) ? pos : s.size();
  }
  return s.size();
}

std::string StreamDecoder::push(int32_t id) {
  pending_ += tokenizer_.token_bytes(id, previous_);
  previous_ = id;
  const size_t ready = complete_utf8_prefix(pending_);
  if (ready == 0) return {};
  // Bytes that can never become valid (stray continuation bytes) are final: repair them now.
  std::string out = utf8::repair(std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = utf8::repair(pending_);
  pending_.clear();
  return out;
}

}  // namespace brisk
