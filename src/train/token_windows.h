// Training text as token windows (issue 21's data): files tokenized with the model's tokenizer,
// each file one document, documents joined by a separator token (the tokenizer's EOS by default),
// cut into consecutive windows of window + 1 tokens (inputs are the first `window`, targets the
// same shifted by one). Each epoch visits every window once in an order fixed by (seed, epoch),
// the same on every machine (its own generator, not std::shuffle, whose order is the library's).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <vector>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace brisk::train {

class TokenWindows {
 public:
  // Errors name the file (missing, unreadable, invalid UTF-8) or say why no window fits.
  static Result<TokenWindows> from_files(const Tokenizer& tokenizer, const std::vector<std::filesystem::path>& files,
                                         int64_t window, std::optional<int32_t> separator = std::nullopt);

  int64_t size() const { return count_; }  // windows per epoch
  int64_t window() const { return window_; }
  int64_t tokens() const { return int64_t(tokens_.size()); }
  // The `index`-th window of `epoch` (0 <= index < size()): window + 1 tokens.
  std::span<const int32_t> at(int64_t epoch, int64_t index, uint64_t seed) const;

 private:
  std::vector<int32_t> tokens_;
  int64_t window_ = 0, count_ = 0;
  mutable int64_t order_epoch_ = -1;
  mutable uint64_t order_seed_ = 0;
  mutable std::vector<int64_t> order_;  // the current epoch's permutation
};

}  // namespace brisk::train
