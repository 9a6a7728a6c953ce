// Python's str methods on UTF-8 strings, as chat templates call them (.strip(), .split(),
// .title(), slicing by character). Indices and lengths count code points, as Python's do.
// Case mapping (upper/lower/title/capitalize) covers ASCII only; other letters pass unchanged.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace brisk::jinja {

std::vector<uint32_t> decode_utf8(std::string_view s);  // invalid bytes decode as themselves
std::string encode_utf8(const std::vector<uint32_t>& code_points);
int64_t code_point_count(std::string_view s);

bool is_python_space(uint32_t code_point);  // str.isspace()

enum class StripSide { kBoth, kLeft, kRight };
// str.strip(chars): Python whitespace when chars is nullopt, else any code point in chars.
std::string python_strip(std::string_view s, const std::optional<std::string>& chars, StripSide side);
// str.split(sep, maxsplit): whitespace runs when sep is nullopt; maxsplit < 0 means no limit.
std::vector<std::string> python_split(std::string_view s, const std::optional<std::string>& sep,
                                      int64_t maxsplit);
// str.replace(old, new, count); count < 0 means all.
std::string python_replace(std::string_view s, std::string_view from, std::string_view to, int64_t count);

std::string html_escape(const std::string& s);  // markupsafe.escape: & < > " '
std::string ascii_upper(std::string_view s);
std::string ascii_lower(std::string_view s);
std::string python_capitalize(std::string_view s);  // first upper, rest lower
std::string python_title(std::string_view s);       // each word's first letter upper, rest lower

// Python's slice index rules (PySlice_AdjustIndices): the positions seq[start:stop:step] visits.
std::vector<int64_t> slice_positions(int64_t length, std::optional<int64_t> start,
                                     std::optional<int64_t> stop, std::optional<int64_t> step);

}  // namespace brisk::jinja
