#include "runtime/device.h"

#include "backends/cpu/cpu_backend.h"
#ifdef BRISK_HAVE_CUDA
#include "backends/cuda/cuda_backend.h"
#endif

namespace brisk {

Result<std::unique_ptr<Backend>> make_backend(const BackendOptions& options) {
  const std::string& device = options.device;
  if (options.threads < 0) return make_error("--threads must be >= 0 (0 = all cores)");
  if (device == "cpu")
    return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(
        options.threads, options.bf16 == Bf16Precision::Fast ? cpu::Bf16Math::Dot : cpu::Bf16Math::Exact,
        options.mmap_weights ? WeightPlacement::Mapped : WeightPlacement::Resident));
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (device.size() > 5) {
      const std::string digits = device.substr(5);
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 4)
        return make_error("--device '" + device + "': expected cuda or cuda:N");
      index = std::stoi(digits);
    }
#ifdef BRISK_HAVE_CUDA
    return make_cuda_backend(index);
#else
    (void)index;
    return make_error("--device " + device + ": this brisk was built without CUDA (nvcc was not found at build time)");
#endif
  }
  return make_error("--device '" + device + "': expected cpu, cuda or cuda:N");
}

}  // namespace brisk
