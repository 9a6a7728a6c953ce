#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace brisk::byte_level {
namespace {

// Bytes GPT-2 considers printable keep their code point; the other 68 are numbered upwards from
// U+0100 in byte order.
bool is_self_mapped(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct Tables {
  std::array<std::string, 256> byte_to_text;
  std::array<int16_t, 512> code_point_to_byte;  // every mapped code point is below U+0144

  Tables() {
    code_point_to_byte.fill(-1);
    int next_extra = 256;
    for (int b = 0; b < 256; ++b) {
      const int cp = is_self_mapped(b) ? b : next_extra++;
      utf8::append_char(byte_to_text[b], static_cast<uint32_t>(cp));
      code_point_to_byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

void encode(std::string_view raw, std::string& out) {
  const Tables& t = tables();
  for (unsigned char b : raw) out += t.byte_to_text[b];
}

std::string decode(std::string_view mapped) {
  const Tables& t = tables();
  std::string out;
  out.reserve(mapped.size());
  for (size_t pos = 0; pos < mapped.size();) {
    size_t len = utf8::valid_char_length(mapped, pos);
    if (len == 0) {  // not produced by any vocabulary we load; pass the byte through
      out.push_back(mapped[pos++]);
      continue;
    }
    size_t unused = 0;
    const uint32_t cp = utf8::decode_char(mapped, pos, &unused);
    if (cp < t.code_point_to_byte.size() && t.code_point_to_byte[cp] >= 0) {
      out.push_back(static_cast<char>(t.code_point_to_byte[cp]));
    } else {
      out.append(mapped.substr(pos, len));
    }
    pos += len;
  }
  return out;
}

}  // namespace brisk::byte_level
