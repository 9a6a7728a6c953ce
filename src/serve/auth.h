// API-key check for the /v1 endpoints (OpenAI clients send "Authorization: Bearer <key>").
#pragma once

#include <string_view>

namespace brisk::serve {

// True when no key is configured, or the header is "Bearer <key>" with the exact key. The
// comparison takes the same time wherever the first difference is.
bool bearer_authorized(std::string_view authorization_header, std::string_view api_key);

}  // namespace brisk::serve
