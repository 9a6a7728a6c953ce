#include "runtime/kv_blocks.h"

#include "core/error.h"

namespace brisk {

KvBlocks::KvBlocks(int64_t n_blocks)
    : refs_(size_t(n_blocks), 0), hash_of_(size_t(n_blocks), 0), published_(size_t(n_blocks), false),
      idle_pos_(size_t(n_blocks)) {
  // Lowest ids handed out first (popped from the back).
  for (int64_t b = n_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));
}

std::optional<int32_t> KvBlocks::allocate() {
  int32_t block;
  if (!free_.empty()) {
    block = free_.back();
    free_.pop_back();
  } else if (!idle_cached_.empty()) {
    block = idle_cached_.front();
    idle_cached_.pop_front();
    forget(block);
  } else {
    return std::nullopt;
  }
  refs_[size_t(block)] = 1;
  return block;
}

void KvBlocks::release(int32_t block) {
  BRISK_CHECK(block >= 0 && size_t(block) < refs_.size() && refs_[size_t(block)] > 0,
              "KvBlocks::release: block not held");
  if (--refs_[size_t(block)] > 0) return;
  if (published_[size_t(block)]) {
    idle_cached_.push_back(block);
    idle_pos_[size_t(block)] = std::prev(idle_cached_.end());
  } else {
    free_.push_back(block);
  }
}

uint64_t KvBlocks::chain_hash(uint64_t previous, const int32_t* tokens, int64_t n) {
  // FNV-1a over the previous hash and the token ids: cheap, and a collision needs two different
  // prefixes with equal 64-bit hashes.
  uint64_t h = 1469598103934665603ull ^ previous;
  auto mix = [&](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  mix(previous);
  for (int64_t i = 0; i < n; ++i) mix(uint64_t(uint32_t(tokens[i])));
  return h;
}

void KvBlocks::publish(int32_t block, uint64_t hash) {
  BRISK_CHECK(refs_[size_t(block)] > 0, "KvBlocks::publish: block not held");
  if (published_[size_t(block)] || by_hash_.count(hash)) return;  // first copy wins
  published_[size_t(block)] = true;
  hash_of_[size_t(block)] = hash;
  by_hash_[hash] = block;
}

std::optional<int32_t> KvBlocks::lookup(uint64_t hash) {
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  const int32_t block = it->second;
  if (refs_[size_t(block)] == 0) idle_cached_.erase(idle_pos_[size_t(block)]);
  ++refs_[size_t(block)];
  return block;
}

void KvBlocks::forget(int32_t block) {
  by_hash_.erase(hash_of_[size_t(block)]);
  published_[size_t(block)] = false;
}

}  // namespace brisk
