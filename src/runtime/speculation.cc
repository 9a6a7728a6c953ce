#include "runtime/speculation.h"

#include <algorithm>

#include "runtime/engine.h"
#include "runtime/kv_blocks.h"

namespace brisk {

std::vector<int32_t> PromptLookup::propose(const std::vector<int32_t>& sequence, int64_t n, const Sampler&) {
  const int64_t len = int64_t(sequence.size());
  for (int64_t g = std::min(ngram_, len - 1); g >= 1; --g) {
    const int32_t* tail = sequence.data() + len - g;
    // The latest earlier match [start, start + g) with at least one token after it.
    for (int64_t start = len - g - 1; start >= 0; --start) {
      if (!std::equal(tail, tail + g, sequence.data() + start)) continue;
      const int64_t from = start + g, count = std::min(n, len - from);
      return std::vector<int32_t>(sequence.begin() + from, sequence.begin() + from + count);
    }
  }
  return {};
}

Result<std::unique_ptr<DraftModel>> DraftModel::attach(Engine& draft, Engine& target) {
  const Tokenizer &d = draft.tokenizer(), &t = target.tokenizer();
  const int64_t dv = draft.model().config().vocab_size, tv = target.model().config().vocab_size;
  if (dv != tv)
    return make_error("--draft: the draft's vocabulary has " + std::to_string(dv) + " entries, the model's " +
                      std::to_string(tv) + ": a draft must share the model's tokenizer");
  if (d.vocab_size() != t.vocab_size())
    return make_error("--draft: the draft's tokenizer has " + std::to_string(d.vocab_size()) + " tokens, the model's " +
                      std::to_string(t.vocab_size()) + ": a draft must share the model's tokenizer");
  for (int32_t id = 0; id < t.vocab_size(); ++id)
    if (d.token_bytes(id, 0) != t.token_bytes(id, 0))
      return make_error("--draft: token " + std::to_string(id) + " is '" + t.token_bytes(id, 0) + "' for the model but '" +
                        d.token_bytes(id, 0) + "' for the draft: a draft must share the model's tokenizer");
  return std::unique_ptr<DraftModel>(new DraftModel(draft));
}

DraftModel::DraftModel(Engine& draft)
    : engine_(draft), blocks_(std::make_unique<KvBlocks>(draft.cache().n_blocks())) {}

DraftModel::~DraftModel() = default;

std::vector<int32_t> DraftModel::propose(const std::vector<int32_t>& sequence, int64_t n, const Sampler& sampler) {
  std::vector<DraftRequest> one = {{&sequence, n, &sampler, &own_, {}}};
  propose_all(one);
  return std::move(one[0].proposals);
}

void DraftModel::release(DraftCache& cache) {
  for (int32_t b : cache.blocks) blocks_->release(b);
  cache.blocks.clear();
  cache.tokens.clear();
}

bool DraftModel::reserve(DraftCache& cache, int64_t positions) {
  while (int64_t(cache.blocks.size()) < KvCache::blocks_for(positions)) {
    const std::optional<int32_t> block = blocks_->allocate();
    if (!block) return false;
    cache.blocks.push_back(*block);
  }
  return true;
}

std::vector<float> DraftModel::run(const std::vector<SequenceChunk>& chunks) {
  const int64_t max_rows = engine_.model().max_rows(), vocab = engine_.model().config().vocab_size;
  std::vector<float> rows(chunks.size() * size_t(vocab));
  std::vector<SequenceChunk> pass;
  std::vector<size_t> row_owner;  // the chunk of each logits row of the pass
  int64_t used = 0;
  auto flush = [&] {
    if (pass.empty()) return;
    const float* logits = engine_.forward(pass);
    for (size_t j = 0; j < row_owner.size(); ++j)
      std::copy(logits + int64_t(j) * vocab, logits + int64_t(j + 1) * vocab, rows.data() + int64_t(row_owner[j]) * vocab);
    pass.clear();
    row_owner.clear();
    used = 0;
  };
  for (size_t i = 0; i < chunks.size(); ++i) {
    SequenceChunk rest = chunks[i];
    while (rest.n_tokens > 0) {  // a piece that fills the pass runs before the rest of its chunk
      if (used == max_rows) flush();
      SequenceChunk piece = rest;
      piece.n_tokens = std::min(rest.n_tokens, max_rows - used);
      piece.logits = piece.n_tokens == rest.n_tokens ? LogitRows::Last : LogitRows::None;
      if (piece.logits == LogitRows::Last) row_owner.push_back(i);
      pass.push_back(piece);
      used += piece.n_tokens;
      rest.tokens += piece.n_tokens;
      rest.first_pos += piece.n_tokens;
      rest.n_tokens -= piece.n_tokens;
    }
  }
  flush();
  return rows;
}

void DraftModel::propose_all(std::vector<DraftRequest>& requests) {
  const int64_t vocab = engine_.model().config().vocab_size;
  // The requests still drafting, each with a copy of its sampler (the target's noise, penalties and
  // grammar state) and its latest proposal, which its next one-row pass runs.
  struct Drafting {
    DraftRequest* request;
    Sampler coupled;
    int32_t token = 0;
  };
  std::vector<Drafting> drafting;
  std::vector<SequenceChunk> chunks;
  for (DraftRequest& r : requests) {
    r.proposals.clear();
    const std::vector<int32_t>& sequence = *r.sequence;
    const int64_t len = int64_t(sequence.size());
    r.n = std::min(r.n, engine_.context() - len);
    if (r.n <= 0 || len == 0) continue;
    // Run what the cache lacks (at least the last token, for its logits).
    DraftCache& cache = *r.cache;
    int64_t keep = 0;
    while (keep < int64_t(cache.tokens.size()) && keep + 1 < len && cache.tokens[size_t(keep)] == sequence[size_t(keep)])
      ++keep;
    if (!reserve(cache, len + r.n - 1)) {
      release(cache);
      continue;
    }
    cache.tokens = sequence;
    drafting.push_back({&r, *r.sampler});
    chunks.push_back({sequence.data() + keep, len - keep, keep, cache.blocks.data(), int64_t(cache.blocks.size()),
                      LogitRows::Last});
  }
  while (!chunks.empty()) {
    std::vector<float> logits = run(chunks);
    std::vector<Drafting> next;
    chunks.clear();
    for (size_t i = 0; i < drafting.size(); ++i) {
      Drafting& d = drafting[i];
      DraftRequest& r = *d.request;
      const int32_t token = d.coupled.sample(logits.data() + int64_t(i) * vocab);
      if (token == kNonFiniteLogits) continue;
      r.proposals.push_back(token);
      if (int64_t(r.proposals.size()) == r.n) continue;
      next.push_back({&r, std::move(d.coupled), token});
    }
    drafting = std::move(next);
    for (Drafting& d : drafting) {  // chunks point at the tokens once the vector stopped moving
      DraftCache& cache = *d.request->cache;
      chunks.push_back({&d.token, 1, int64_t(cache.tokens.size()), cache.blocks.data(), int64_t(cache.blocks.size()),
                        LogitRows::Last});
      cache.tokens.push_back(d.token);
    }
  }
}

}  // namespace brisk
