#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace brisk::train {

double LrSchedule::at(int64_t step) const {
  if (warmup > 0 && step <= warmup) return peak * double(step) / double(warmup);
  if (step >= total) return min_lr;
  const double progress = double(step - warmup) / double(std::max<int64_t>(1, total - warmup));
  constexpr double kPi = 3.14159265358979323846;
  return min_lr + (peak - min_lr) * 0.5 * (1.0 + std::cos(kPi * progress));
}

}  // namespace brisk::train
