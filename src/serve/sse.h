// Server-sent events framing as OpenAI streams it: each chunk is `data: <json>\n\n`, and the
// stream ends with `data: [DONE]\n\n`.
#pragma once

#include <string>
#include <string_view>

namespace brisk::serve {

// One event. A payload with newlines becomes several data: lines (the SSE rule), so a client
// always reassembles the exact payload.
std::string sse_event(std::string_view payload);
inline std::string sse_done() { return "data: [DONE]\n\n"; }

}  // namespace brisk::serve
