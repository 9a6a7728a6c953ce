// Picks the backend a command runs on: "cpu" or "cuda[:N]". A GPU request never falls back to the
// CPU silently: without CUDA support or a device it is an error.
#pragma once

#include <memory>
#include <string>

#include "core/error.h"
#include "ops/backend.h"

namespace brisk {

enum class Bf16Precision { Exact, Fast };  // Fast: bf16 activations in bf16-weight matmuls

struct BackendOptions {
  std::string device = "cpu";  // cpu, cuda, cuda:N
  int threads = 0;             // CPU threads; 0: all hardware threads
  Bf16Precision bf16 = Bf16Precision::Exact;
  bool mmap_weights = false;   // CPU: read weights in place instead of copying them to huge pages
};

Result<std::unique_ptr<Backend>> make_backend(const BackendOptions& options);

}  // namespace brisk
