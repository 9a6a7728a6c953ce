#include "train/token_windows.h"

#include <numeric>

#include "core/mapped_file.h"
#include "core/splitmix64.h"
#include "tokenizer/utf8.h"

namespace brisk::train {

Result<TokenWindows> TokenWindows::from_files(const Tokenizer& tokenizer, const std::vector<std::filesystem::path>& files,
                                              int64_t window, std::optional<int32_t> separator) {
  if (window < 1) return make_error("training window must be at least 1 token");
  if (files.empty()) return make_error("no training files given");
  if (!separator) separator = tokenizer.eos_id();
  TokenWindows out;
  out.window_ = window;
  for (size_t f = 0; f < files.size(); ++f) {
    BRISK_ASSIGN(text, read_text_file(files[f], size_t(1) << 34));
    if (auto valid = utf8::require_valid(text, files[f].string()); !valid.ok()) return valid.error();
    if (f > 0 && separator) out.tokens_.push_back(*separator);
    const std::vector<int32_t> ids = tokenizer.encode(text, AddSpecial::No);
    out.tokens_.insert(out.tokens_.end(), ids.begin(), ids.end());
  }
  out.count_ = out.tokens_.empty() ? 0 : (int64_t(out.tokens_.size()) - 1) / window;
  if (out.count_ == 0)
    return make_error("the training text has " + std::to_string(out.tokens_.size()) + " tokens: fewer than one window of " +
                      std::to_string(window) + " + 1");
  return out;
}

std::span<const int32_t> TokenWindows::at(int64_t epoch, int64_t index, uint64_t seed) const {
  BRISK_CHECK(index >= 0 && index < count_, "TokenWindows::at: index out of range");
  if (epoch != order_epoch_ || seed != order_seed_ || order_.empty()) {
    order_.resize(size_t(count_));
    std::iota(order_.begin(), order_.end(), int64_t(0));
    SplitMix64 rng{seed ^ (uint64_t(epoch) * 0xD1B54A32D192ED03ull)};
    for (int64_t i = count_ - 1; i > 0; --i)  // Fisher-Yates
      std::swap(order_[size_t(i)], order_[size_t(rng.next() % uint64_t(i + 1))]);
    order_epoch_ = epoch;
    order_seed_ = seed;
  }
  return {tokens_.data() + order_[size_t(index)] * window_, size_t(window_ + 1)};
}

}  // namespace brisk::train
