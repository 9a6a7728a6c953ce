#include "serve/auth.h"

#include <fstream>
#include <sstream>

namespace brisk::serve {

bool bearer_authorized(std::string_view header, std::string_view api_key) {
  if (api_key.empty()) return true;
  constexpr std::string_view scheme = "Bearer ";
  if (header.size() < scheme.size()) return false;
  // The scheme is case-insensitive (RFC 9110); the key is not.
  for (size_t i = 0; i < scheme.size(); ++i)
    if ((header[i] | 0x20) != (scheme[i] | 0x20)) return false;
  std::string_view given = header.substr(scheme.size());
  while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
  while (!given.empty() && (given.back() == ' ' || given.back() == '\t')) given.remove_suffix(1);
  unsigned diff = given.size() == api_key.size() ? 0u : 1u;
  for (size_t i = 0; i < api_key.size(); ++i)
    diff |= unsigned(static_cast<unsigned char>(i < given.size() ? given[i] : 0) ^ static_cast<unsigned char>(api_key[i]));
  return diff == 0;
}

namespace {

Result<std::string> checked_key(std::string key, const std::string& source) {
  if (key.empty())
    return make_error(source + ": the API key is empty (omit it to serve without authentication)");
  for (const char c : key) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7f)
      return make_error(source +
                        ": the API key contains whitespace or a control character, which a client's "
                        "'Authorization: Bearer' header cannot carry");
  }
  return key;
}

}  // namespace

Result<std::string> resolve_api_key(const ApiKeySources& sources) {
  if (sources.flag && sources.file) return make_error("--api-key and --api-key-file: give one, not both");
  if (sources.flag) return checked_key(*sources.flag, "--api-key");
  if (sources.file) {
    const std::string source = "--api-key-file " + sources.file->string();
    std::ifstream in(*sources.file, std::ios::binary);
    if (!in) return make_error(source + ": cannot read the file");
    std::ostringstream text;
    text << in.rdbuf();
    std::string key = text.str();
    if (key.ends_with('\n')) key.pop_back();  // the newline an editor or `echo` adds
    if (key.ends_with('\r')) key.pop_back();
    return checked_key(std::move(key), source);
  }
  if (sources.environment)
    return checked_key(*sources.environment, std::string("the environment variable ") + kApiKeyEnvironment);
  return std::string();
}

}  // namespace brisk::serve
