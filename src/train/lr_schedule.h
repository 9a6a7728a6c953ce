// The learning rate of each step: linear warmup from 0 to the peak over `warmup` steps, then a
// cosine decay to min_lr at `total` steps (and min_lr after), as transformers'
// get_cosine_schedule_with_warmup with a floor.
#pragma once

#include <cstdint>

namespace brisk::train {

struct LrSchedule {
  double peak = 3e-4;
  double min_lr = 0.0;
  int64_t warmup = 0;
  int64_t total = 1;

  // lr for step `step` (1-based).
  double at(int64_t step) const;
};

}  // namespace brisk::train
