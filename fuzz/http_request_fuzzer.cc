// Why: every byte a client sends reaches this path before any check of who sent it: Beast's
// request parser under the server's head and body limits (serve/http_server.cc), the
// Content-Encoding decoder (chunked and gzip/deflate bodies, bounded after inflating), then the
// OpenAI body parsers. Past bugs: gzip bombs, invalid UTF-8, numbers like 1e999. The input is the
// raw request bytes as they arrive on the socket.
#include <boost/beast/core/error.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>

#include "serve/http_body.h"
#include "serve/http_server.h"
#include "serve/openai_protocol.h"

namespace http = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const brisk::serve::HttpOptions kLimits;  // the server's defaults
  http::request_parser<http::string_body> parser;
  parser.header_limit(uint32_t(kLimits.max_header_bytes));
  parser.body_limit(kLimits.max_body_bytes);
  boost::asio::const_buffer input(data, size);
  boost::beast::error_code error;
  while (input.size() > 0 && !parser.is_done()) {
    const size_t used = parser.put(input, error);
    if (error == http::error::need_more) break;  // all bytes are here: the message is incomplete
    if (error) return 0;
    if (used == 0) break;  // nothing more it can take without more bytes
    input += used;
  }
  if (!parser.is_done()) {
    // The connection ends here. With no byte parsed Beast's reads report end_of_stream (the
    // server closes); put_eof requires a started message.
    if (!parser.got_some()) return 0;
    parser.put_eof(error);
    if (error || !parser.is_done()) return 0;
  }
  const auto& request = parser.get();
  const auto encoding = request[http::field::content_encoding];  // Boost's string_view
  brisk::serve::DecodedBody decoded = brisk::serve::decode_body(
      request.body(), std::string_view(encoding.data(), encoding.size()), kLimits.max_body_bytes);
  if (decoded.status != 200) return 0;
  // The server picks one by the path; all three see every body here (each ignores what it
  // does not know), so one input exercises them all.
  (void)brisk::serve::parse_completion_body(decoded.body);
  (void)brisk::serve::parse_chat_body(decoded.body);
  (void)brisk::serve::parse_embeddings_body(decoded.body);
  return 0;
}
