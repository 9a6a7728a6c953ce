#include "core/cpu_features.h"

#include <cpuid.h>

namespace brisk {

namespace {
CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  f.fma = c & bit_FMA;
  f.f16c = c & bit_F16C;
  bool osxsave = c & bit_OSXSAVE;
  if (!osxsave) return f;
  unsigned xcr0_lo, xcr0_hi;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  bool ymm_ok = (xcr0_lo & 0x6) == 0x6;
  bool zmm_ok = (xcr0_lo & 0xe6) == 0xe6;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = ymm_ok && (b & bit_AVX2);
  f.avx512f = zmm_ok && (b & bit_AVX512F);
  f.avx512bw = zmm_ok && (b & bit_AVX512BW);
  f.avx512vnni = zmm_ok && (c & bit_AVX512VNNI);
  f.avx512vbmi2 = zmm_ok && (c & (1u << 6));  // CPUID.7.0:ECX.AVX512_VBMI2
  __cpuid_count(7, 1, a, b, c, d);
  f.avx512bf16 = zmm_ok && (a & bit_AVX512BF16);
  return f;
}
}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

std::string cpu_features_string() {
  const auto& f = cpu_features();
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.f16c, "f16c");
  add(f.avx512f, "avx512f");
  add(f.avx512bw, "avx512bw");
  add(f.avx512vnni, "avx512vnni");
  add(f.avx512vbmi2, "avx512vbmi2");
  add(f.avx512bf16, "avx512bf16");
  return s;
}

}  // namespace brisk
