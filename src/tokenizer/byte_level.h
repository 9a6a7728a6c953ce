// GPT-2's reversible byte <-> printable-character mapping. Byte-level BPE vocabularies are
// written in these characters, so every byte sequence can be spelled without control bytes or
// spaces: printable Latin-1 bytes stand for themselves, the rest map to U+0100 and upwards.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace brisk::byte_level {

// Appends the mapped spelling of every byte of raw.
void encode(std::string_view raw, std::string& out);

// Inverts encode: each mapped character becomes its byte; characters outside the mapping (as in
// added tokens) keep their own UTF-8 bytes, as the Hugging Face ByteLevel decoder does.
std::string decode(std::string_view mapped);

}  // namespace brisk::byte_level
