#include "models/rope_tables.h"

#include <cmath>

namespace brisk {

RopeTables::RopeTables(Backend& backend, const RopeConfig& rope, int64_t head_dim, int64_t positions) {
  const std::vector<float> inv_freq = rope_inv_freq(rope, head_dim, positions);
  const float attention_factor = float(rope.attention_factor);
  const int64_t half = int64_t(inv_freq.size());
  std::vector<float> cos_host(size_t(positions * half)), sin_host(size_t(positions * half));
  for (int64_t p = 0; p < positions; ++p)
    for (int64_t i = 0; i < half; ++i) {
      // transformers forms the angle in fp32 (inv_freq * position); so do we, then cos/sin exactly.
      const float angle = float(p) * inv_freq[size_t(i)];
      cos_host[size_t(p * half + i)] = float(std::cos(double(angle))) * attention_factor;
      sin_host[size_t(p * half + i)] = float(std::sin(double(angle))) * attention_factor;
    }
  cos_ = backend.allocate(cos_host.size());
  sin_ = backend.allocate(sin_host.size());
  backend.copy_to_device(cos_.data(), cos_host.data(), cos_host.size());
  backend.copy_to_device(sin_.data(), sin_host.data(), sin_host.size());
}

}  // namespace brisk
