// Which SIMD instruction sets this CPU has; kernels are chosen from this once, at run time.
#pragma once

#include <string>

namespace brisk {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vnni = false;
  bool avx512vbmi2 = false;  // byte expand / compress (sparse int8 weights)
  bool avx512bf16 = false;
};

const CpuFeatures& cpu_features();
std::string cpu_features_string();  // "avx512f avx512bf16 ..." for logs and bench JSON

}  // namespace brisk
