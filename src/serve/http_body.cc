#include "serve/http_body.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>

namespace brisk::serve {

namespace {

std::string lowercase_trimmed(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  std::string out(text);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

DecodedBody inflate_bounded(const std::string& encoded, size_t limit) {
  z_stream stream{};
  // 15 + 32: a zlib or a gzip header, detected from the first bytes.
  if (inflateInit2(&stream, 15 + 32) != Z_OK) return {500, "cannot start zlib", {}};
  DecodedBody out;
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(encoded.data()));
  stream.avail_in = uInt(encoded.size());
  char buffer[64 << 10];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof(buffer);
    rc = inflate(&stream, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      out = {400, std::string("the compressed request body is corrupt (zlib: ") + (stream.msg ? stream.msg : "truncated") + ")", {}};
      break;
    }
    const size_t produced = sizeof(buffer) - stream.avail_out;
    if (out.body.size() + produced > limit) {
      out = {413, "the request body inflates to more than " + std::to_string(limit) + " bytes", {}};
      break;
    }
    out.body.append(buffer, produced);
    if (rc == Z_OK && produced == 0 && stream.avail_in == 0) {
      out = {400, "the compressed request body is truncated", {}};
      break;
    }
  }
  inflateEnd(&stream);
  return out;
}

}  // namespace

DecodedBody decode_body(std::string encoded, std::string_view encoding, size_t limit) {
  const std::string name = lowercase_trimmed(encoding);
  if (name.empty() || name == "identity") return {200, "", std::move(encoded)};
  if (name == "gzip" || name == "x-gzip" || name == "deflate") return inflate_bounded(encoded, limit);
  return {415, "Content-Encoding '" + std::string(encoding) + "' is not supported (use gzip, deflate or none)", {}};
}

}  // namespace brisk::serve
