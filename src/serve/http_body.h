// Request bodies sent with Content-Encoding: gzip or deflate, inflated under a size bound (a small
// compressed body may expand a thousandfold: 611 KB of gzip became 600 MiB before this bound).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace brisk::serve {

struct DecodedBody {
  int status = 200;     // 200, or 400 (corrupt), 413 (over the bound), 415 (unknown encoding)
  std::string message;  // why, when status is not 200
  std::string body;
};

// `encoding` is the Content-Encoding header: "", "identity", "gzip" or "deflate" (zlib format,
// as HTTP defines it) decode; anything else is refused. The result holds at most `limit` bytes.
DecodedBody decode_body(std::string encoded, std::string_view encoding, size_t limit);

}  // namespace brisk::serve
