// Identifiers of responses and tool calls ("chatcmpl-<hex>", "call_<hex>"): random, so distinct
// across requests and servers; not secrets.
#pragma once

#include <random>
#include <string>
#include <string_view>

namespace brisk::serve {

inline std::string random_id(std::string_view prefix, int hex_digits) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(prefix);
  for (int i = 0; i < hex_digits; ++i) id += kHex[rng() % 16];
  return id;
}

}  // namespace brisk::serve
