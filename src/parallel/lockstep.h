// How the ranks of a split model (tensor or pipeline parallel) stay in step (issue 23): rank 0 owns the tokenizer, the
// sampler, the scheduler and any HTTP, and runs as if alone; every batch its model prepares is
// first broadcast to the other ranks (the followers), which run the same pass over their share of
// the weights, taking part in its all-reduces, and nothing else. So any command works split (serve
// and chat included) without the followers knowing what it does.
#pragma once

#include <memory>

#include "models/model.h"
#include "ops/communicator.h"

namespace brisk {

// Rank 0: attaches to its model so every batch goes to the followers before it runs.
void lead_followers(Model& model, std::shared_ptr<Communicator> comm);
// Rank 0, at the end of its run: tells the followers there is nothing more.
void release_followers(Communicator& comm);
// The other ranks: runs every batch rank 0 sends on this rank's model and cache, until released.
void follow_leader(Model& model, KvCache& cache, Communicator& comm);

}  // namespace brisk
