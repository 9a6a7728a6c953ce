#include "models/rope_tables.h"

#include <cmath>

namespace brisk {

RopeTableValues rope_table_values(const RopeConfig& rope, int64_t head_dim, int64_t positions) {
  const std::vector<float> inv_freq = rope_inv_freq(rope, head_dim, positions);
  const float attention_factor = float(rope.attention_factor);
  const int64_t half = int64_t(inv_freq.size());
  RopeTableValues t;
  t.cos.resize(size_t(positions * half));
  t.sin.resize(size_t(positions * half));
  for (int64_t p = 0; p < positions; ++p)
    for (int64_t i = 0; i < half; ++i) {
      // transformers forms the angle in fp32 (inv_freq * position); so do we, then cos/sin exactly.
      const float angle = float(p) * inv_freq[size_t(i)];
      t.cos[size_t(p * half + i)] = float(std::cos(double(angle))) * attention_factor;
      t.sin[size_t(p * half + i)] = float(std::sin(double(angle))) * attention_factor;
    }
  return t;
}

RopeTables::RopeTables(Backend& backend, const RopeConfig& rope, int64_t head_dim, int64_t positions) {
  const RopeTableValues host = rope_table_values(rope, head_dim, positions);
  cos_ = backend.allocate(host.cos.size());
  sin_ = backend.allocate(host.sin.size());
  backend.copy_to_device(cos_.data(), host.cos.data(), host.cos.size());
  backend.copy_to_device(sin_.data(), host.sin.data(), host.sin.size());
}

}  // namespace brisk
