// What each candidate format costs on this machine (issue 27: costs from brisk's own kernels, not a
// formula): the seconds the chosen backend's matmul spends on a group's matrices stored in the
// candidate format, at one row (a decode step) and per row of a prefill chunk, issued as the
// models issue them (q/k/v in one fused call). Each distinct shape list x format is timed once --
// the median of repeated calls after a warm-up, on random values (time does not depend on them),
// reading cold copies as a real step does.
#pragma once

#include <optional>
#include <vector>

#include "optimize/sensitivity.h"

namespace brisk::recipe {

struct GroupTimes {
  // [group][candidate] seconds; nullopt where the candidate cannot hold the group.
  std::vector<std::vector<std::optional<double>>> decode, prefill_per_token;
};

// working_set: the bytes a forward reads (the model's weights): each timed call reads a copy of
// the group not read since that many bytes ago, as in a real step. prefill_rows: the chunk the
// prefill time is measured at (per-token time = chunk time / rows).
// Timed on `where` (a backend made for each shape list x format: its copies go with it), which
// make_backend must accept.
GroupTimes time_groups(const std::vector<SearchGroup>& groups, const std::vector<Candidate>& candidates,
                       const BackendOptions& where, uint64_t working_set, int64_t prefill_rows = 128);

}  // namespace brisk::recipe
