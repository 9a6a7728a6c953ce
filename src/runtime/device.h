// Picks the backend a command runs on: "cpu" or "cuda[:N]". A GPU request never falls back to the
// CPU silently: without CUDA support or a device it is an error.
#pragma once

#include <memory>
#include <string>

#include "core/error.h"
#include "ops/backend.h"

namespace brisk {

Result<std::unique_ptr<Backend>> make_backend(const std::string& device, int cpu_threads);

}  // namespace brisk
