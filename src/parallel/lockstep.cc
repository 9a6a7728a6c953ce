#include "parallel/lockstep.h"

#include <vector>

namespace brisk {

namespace {

// A batch as int64 words: key_bound, chunk count, then per chunk n_tokens, first_pos, the blocks
// its positions use, its logit rows, its tokens and its block table (only the used blocks).
std::vector<int64_t> encode(const std::vector<SequenceChunk>& chunks, int64_t key_bound) {
  std::vector<int64_t> words = {key_bound, int64_t(chunks.size())};
  for (const SequenceChunk& c : chunks) {
    const int64_t blocks = KvCache::blocks_for(c.first_pos + c.n_tokens);
    words.insert(words.end(), {c.n_tokens, c.first_pos, blocks, int64_t(c.logits)});
    words.insert(words.end(), c.tokens, c.tokens + c.n_tokens);
    words.insert(words.end(), c.block_table, c.block_table + blocks);
  }
  return words;
}

// The chunks of encoded words, pointing into `ids` (which keeps the tokens and tables).
std::vector<SequenceChunk> decode(const std::vector<int64_t>& words, std::vector<int32_t>& ids, int64_t& key_bound) {
  key_bound = words[0];
  const int64_t n_chunks = words[1];
  ids.assign(words.begin(), words.end());  // every token and block id, at its word's index
  std::vector<SequenceChunk> chunks;
  size_t at = 2;
  for (int64_t i = 0; i < n_chunks; ++i) {
    SequenceChunk c;
    c.n_tokens = words[at];
    c.first_pos = words[at + 1];
    c.n_blocks = words[at + 2];
    c.logits = LogitRows(words[at + 3]);
    at += 4;
    c.tokens = ids.data() + at;
    at += size_t(c.n_tokens);
    c.block_table = ids.data() + at;
    at += size_t(c.n_blocks);
    chunks.push_back(c);
  }
  return chunks;
}

// One message: its length (0: the end), then its words.
void send(Communicator& comm, std::vector<int64_t> words) {
  int64_t n = int64_t(words.size());
  comm.broadcast(&n, sizeof(n), 0);
  if (n > 0) comm.broadcast(words.data(), n * int64_t(sizeof(int64_t)), 0);
}

}  // namespace

void lead_followers(Model& model, std::shared_ptr<Communicator> comm) {
  model.observe_batches([comm](const std::vector<SequenceChunk>& chunks, int64_t key_bound) {
    send(*comm, encode(chunks, key_bound));
  });
}

void release_followers(Communicator& comm) { send(comm, {}); }

void follow_leader(Model& model, KvCache& cache, Communicator& comm) {
  std::vector<int64_t> words;
  std::vector<int32_t> ids;
  for (;;) {
    int64_t n = 0;
    comm.broadcast(&n, sizeof(n), 0);
    if (n == 0) return;
    words.resize(size_t(n));
    comm.broadcast(words.data(), n * int64_t(sizeof(int64_t)), 0);
    int64_t key_bound = 0;
    const std::vector<SequenceChunk> chunks = decode(words, ids, key_bound);
    model.prepare(chunks, cache, key_bound);
    model.run_prepared(cache);
  }
}

}  // namespace brisk
