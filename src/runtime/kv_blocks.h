// Hands out the KV cache's blocks to sequences: a free list, reference counts, and a prefix
// cache. A block whose positions are all written is published under the hash of every token up
// to its end; a later sequence with the same prefix takes the block instead of recomputing it.
// Shared blocks are immutable (only full blocks are published, and a sequence only writes its
// own tail block), so no copy-on-write is ever needed. Blocks that nobody holds but that are
// published stay cached until the free list runs dry, then the least recently released goes.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <unordered_map>
#include <vector>

namespace brisk {

class KvBlocks {
 public:
  explicit KvBlocks(int64_t n_blocks);

  int64_t total() const { return int64_t(refs_.size()); }
  // Blocks allocate() can return: free ones plus cached ones nobody holds.
  int64_t available() const { return int64_t(free_.size() + idle_cached_.size()); }
  int64_t used() const { return total() - available(); }

  // A block with one reference, or nothing when every block is held.
  std::optional<int32_t> allocate();
  void release(int32_t block);

  // Chained hash of a block's tokens after the prefix hash `previous` (0 for the first block).
  static uint64_t chain_hash(uint64_t previous, const int32_t* tokens, int64_t n);
  // Records that `block` (held, full, immutable from now on) holds the prefix with this hash.
  void publish(int32_t block, uint64_t hash);
  // The cached block for this prefix hash with one more reference, or nothing.
  std::optional<int32_t> lookup(uint64_t hash);

 private:
  void forget(int32_t block);  // drops a cached block's hash before reuse

  std::vector<int32_t> refs_;              // per block
  std::vector<uint64_t> hash_of_;          // per block; valid when published_[b]
  std::vector<bool> published_;
  std::vector<int32_t> free_;              // never published or forgotten, refs 0
  std::list<int32_t> idle_cached_;         // published, refs 0; front = least recently released
  std::vector<std::list<int32_t>::iterator> idle_pos_;  // per block, valid when idle and cached
  std::unordered_map<uint64_t, int32_t> by_hash_;
};

}  // namespace brisk
