// Sizes the CPU products share, named once (tuned on a Zen 5 with 48 KiB L1d and 1 MiB L2 per core;
// bench/notes-cpu-matmul.md).
#pragma once

#include <cstdint>

namespace brisk::cpu {

// An activation block is re-read by every weight panel or tile of a thread, so it takes half of
// L2 and weights stream from memory once per block (256 KiB and 1 MiB both measured slower).
inline constexpr int64_t kActivationBlockBytes = 512 * 1024;
// Below this many multiply-adds, waking the other threads costs more than it saves.
inline constexpr int64_t kMinParallelMacs = 1 << 16;

constexpr int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

}  // namespace brisk::cpu
