#include "serve/auth.h"

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

}  // namespace brisk::serve
