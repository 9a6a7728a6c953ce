// API-key check for the /v1 endpoints (OpenAI clients send "Authorization: Bearer <key>"), and
// where the key comes from: --api-key, --api-key-file or the BRISK_API_KEY environment variable
// (the last two keep it out of `ps`).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace brisk::serve {

// True when no key is configured, or the header is "Bearer <key>" with the exact key. The
// comparison takes the same time wherever the first difference is.
bool bearer_authorized(std::string_view authorization_header, std::string_view api_key);

// The places a key may be given; unset ones are nullopt.
struct ApiKeySources {
  std::optional<std::string> flag{};            // --api-key
  std::optional<std::filesystem::path> file{};  // --api-key-file (one trailing newline is dropped)
  std::optional<std::string> environment{};     // BRISK_API_KEY, used when neither flag is given
};
inline constexpr const char* kApiKeyEnvironment = "BRISK_API_KEY";

// The key to require, or "" when none is given anywhere. An empty key (which would silently turn
// authentication off) or one holding whitespace or control characters (which no client could
// send back, locking everyone out) is an error naming its source; so are both flags at once.
Result<std::string> resolve_api_key(const ApiKeySources& sources);

}  // namespace brisk::serve
