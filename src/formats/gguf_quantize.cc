// brisk's encoders of the ggml block formats it exports (formats/gguf_quants.h has the layouts
// and the decoders these invert). Q8_0 and Q4_0 use ggml's reference formulas, so files decode
// as llama.cpp's own quantizer would write them. The K-quants choose each sub-block's scale (and
// min) by trying a few grids around the plain range fit and refitting by least squares, then
// store those scales in 6 or 8 bits under an fp16 super-scale; the final codes are chosen under
// the scales as stored, so what a reader decodes is what was measured.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "formats/gguf_quants.h"

namespace brisk::gguf_encode {

namespace {

template <class Block>
void store_block(void* dst, int64_t i, const Block& b) {
  std::memcpy(static_cast<uint8_t*>(dst) + i * int64_t(sizeof(Block)), &b, sizeof(Block));
}

int nearest(float x) { return int(std::lround(x)); }

// The fp16 the block stores and the value a reader decodes from it.
float as_stored_f16(float x, uint16_t* bits) {
  *bits = f32_to_f16(x);
  return f16_to_f32(*bits);
}

// The signed value of largest magnitude (the first, on ties).
float signed_extreme(const float* x, int n) {
  float e = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > std::fabs(e)) e = x[i];
  return e;
}

// A sub-block fit value ~ scale * q - min, q in [0, levels), min >= 0 (the asymmetric K-quants):
// grids whose top level lands near the maximum, each refit by least squares over its codes.
struct AffineFit {
  float scale = 0, min = 0;
};
AffineFit fit_affine(const float* x, int n, int levels) {
  float lo = 0, hi = 0;  // the range, widened to hold 0 (min is stored as a non-negative offset)
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  AffineFit best{(hi - lo) / float(levels - 1), -lo};
  if (hi == lo) return best;
  auto error = [&](const AffineFit& f) {
    double e = 0;
    for (int i = 0; i < n; ++i) {
      const int q = f.scale > 0 ? std::clamp(nearest((x[i] + f.min) / f.scale), 0, levels - 1) : 0;
      const double d = double(f.scale) * q - f.min - x[i];
      e += d * d;
    }
    return e;
  };
  double best_error = error(best);
  for (int step = -4; step <= 4; ++step) {
    const float inverse = (float(levels - 1) + 0.1f * float(step)) / (hi - lo);
    // Codes on this grid, then the scale and offset that fit them best: x ~ s q + b.
    double sq = 0, sqq = 0, sx = 0, sqx = 0;
    for (int i = 0; i < n; ++i) {
      const int q = std::clamp(nearest((x[i] - lo) * inverse), 0, levels - 1);
      sq += q;
      sqq += double(q) * q;
      sx += x[i];
      sqx += double(q) * x[i];
    }
    const double det = n * sqq - sq * sq;
    if (det <= 0) continue;
    double s = (n * sqx - sq * sx) / det, b = (sx - s * sq) / n;
    if (b > 0) {  // the offset must stay <= 0: refit the scale alone with b = 0
      b = 0;
      s = sqq > 0 ? sqx / sqq : 0;
    }
    if (s <= 0) continue;
    const AffineFit candidate{float(s), float(-b)};
    const double e = error(candidate);
    if (e < best_error) {
      best_error = e;
      best = candidate;
    }
  }
  return best;
}

// A 16-value sub-block of Q6_K: value ~ scale * q, q in [-32, 31]; the largest magnitude maps to
// -32 (the wider side), then a least-squares refit of the scale over those codes.
float fit_symmetric(const float* x, int n) {
  const float extreme = signed_extreme(x, n);
  if (extreme == 0) return 0;
  float scale = extreme / -32.0f;
  double sqx = 0, sqq = 0;
  for (int i = 0; i < n; ++i) {
    const int q = std::clamp(nearest(x[i] / scale), -32, 31);
    sqx += double(q) * x[i];
    sqq += double(q) * q;
  }
  if (sqq > 0) {
    const float refit = float(sqx / sqq);
    // Keep the refit only where it does not push the extreme past the codes' range.
    if (std::fabs(extreme / refit) <= 32.0f) scale = refit;
  }
  return scale;
}

}  // namespace

void f32(const float* src, int64_t n, void* dst) { std::memcpy(dst, src, size_t(n) * 4); }

void f16(const float* src, int64_t n, void* dst) {
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = f32_to_f16(src[i]);
    std::memcpy(out + 2 * i, &h, 2);
  }
}

void bf16(const float* src, int64_t n, void* dst) {
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = f32_to_bf16(src[i]);
    std::memcpy(out + 2 * i, &h, 2);
  }
}

void q8_0(const float* src, int64_t blocks, void* dst) {
  for (int64_t b = 0; b < blocks; ++b, src += kQK8_0) {
    float amax = 0;
    for (int i = 0; i < kQK8_0; ++i) amax = std::max(amax, std::fabs(src[i]));
    const float d = amax / 127.0f, inverse = d != 0 ? 1.0f / d : 0.0f;
    BlockQ8_0 blk;
    blk.d = f32_to_f16(d);
    for (int i = 0; i < kQK8_0; ++i) blk.qs[i] = int8_t(nearest(src[i] * inverse));
    store_block(dst, b, blk);
  }
}

void q4_0(const float* src, int64_t blocks, void* dst) {
  constexpr int half = kQK4_0 / 2;
  for (int64_t b = 0; b < blocks; ++b, src += kQK4_0) {
    const float d = signed_extreme(src, kQK4_0) / -8.0f, inverse = d != 0 ? 1.0f / d : 0.0f;
    BlockQ4_0 blk;
    blk.d = f32_to_f16(d);
    auto code = [&](float x) { return uint8_t(std::min(15, int(x * inverse + 8.5f))); };
    for (int i = 0; i < half; ++i) blk.qs[i] = uint8_t(code(src[i]) | (code(src[i + half]) << 4));
    store_block(dst, b, blk);
  }
}

void q4_k(const float* src, int64_t blocks, void* dst) {
  constexpr int kSub = 32, kSubs = kQK_K / kSub;
  for (int64_t b = 0; b < blocks; ++b, src += kQK_K) {
    AffineFit fits[kSubs];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < kSubs; ++j) {
      fits[j] = fit_affine(src + j * kSub, kSub, 16);
      max_scale = std::max(max_scale, fits[j].scale);
      max_min = std::max(max_min, fits[j].min);
    }
    BlockQ4_K blk{};
    const float d = as_stored_f16(max_scale / 63.0f, &blk.d);
    const float dmin = as_stored_f16(max_min / 63.0f, &blk.dmin);
    uint8_t sc[kSubs], mn[kSubs];
    for (int j = 0; j < kSubs; ++j) {
      sc[j] = uint8_t(d > 0 ? std::clamp(nearest(fits[j].scale / d), 0, 63) : 0);
      mn[j] = uint8_t(dmin > 0 ? std::clamp(nearest(fits[j].min / dmin), 0, 63) : 0);
      // The packing k_quant_scale_min reads: sub-blocks 0..3 in the low 6 bits of bytes 0..7,
      // 4..7 split into nibbles of bytes 8..11 and the top 2 bits of bytes 0..7.
      if (j < 4) {
        blk.scales[j] = sc[j];
        blk.scales[j + 4] = mn[j];
      } else {
        blk.scales[j + 4] = uint8_t((sc[j] & 0x0f) | ((mn[j] & 0x0f) << 4));
        blk.scales[j - 4] |= uint8_t((sc[j] >> 4) << 6);
        blk.scales[j] |= uint8_t((mn[j] >> 4) << 6);
      }
    }
    uint8_t q[kQK_K];
    for (int j = 0; j < kSubs; ++j) {
      const float step = d * float(sc[j]), offset = dmin * float(mn[j]);
      for (int i = 0; i < kSub; ++i)
        q[j * kSub + i] = uint8_t(step > 0 ? std::clamp(nearest((src[j * kSub + i] + offset) / step), 0, 15) : 0);
    }
    // Each 64 values: the first 32 in the low nibbles of 32 bytes, the next 32 in the high.
    for (int c = 0; c < kQK_K / 64; ++c)
      for (int l = 0; l < 32; ++l) blk.qs[32 * c + l] = uint8_t(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
    store_block(dst, b, blk);
  }
}

void q6_k(const float* src, int64_t blocks, void* dst) {
  constexpr int kSub = 16, kSubs = kQK_K / kSub;
  for (int64_t b = 0; b < blocks; ++b, src += kQK_K) {
    float scales[kSubs];
    float extreme = 0;
    for (int j = 0; j < kSubs; ++j) {
      scales[j] = fit_symmetric(src + j * kSub, kSub);
      if (std::fabs(scales[j]) > std::fabs(extreme)) extreme = scales[j];
    }
    BlockQ6_K blk{};
    const float d = as_stored_f16(extreme / -128.0f, &blk.d);  // the largest scale maps to -128
    uint8_t q[kQK_K];
    for (int j = 0; j < kSubs; ++j) {
      blk.scales[j] = int8_t(d != 0 ? std::clamp(nearest(scales[j] / d), -128, 127) : 0);
      const float step = d * float(blk.scales[j]);
      for (int i = 0; i < kSub; ++i)
        q[j * kSub + i] = uint8_t((step != 0 ? std::clamp(nearest(src[j * kSub + i] / step), -32, 31) : 0) + 32);
    }
    // Each 128 values: ql holds low nibbles of values l and l+64 (bytes 0..31) and l+32, l+96
    // (bytes 32..63); qh holds the top 2 bits of l, l+32, l+64, l+96 in bit pairs 0..7.
    for (int h = 0; h < 2; ++h) {
      const uint8_t* v = q + 128 * h;
      uint8_t* ql = blk.ql + 64 * h;
      uint8_t* qh = blk.qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = uint8_t((v[l] & 0x0f) | ((v[l + 64] & 0x0f) << 4));
        ql[l + 32] = uint8_t((v[l + 32] & 0x0f) | ((v[l + 96] & 0x0f) << 4));
        qh[l] = uint8_t((v[l] >> 4) | ((v[l + 32] >> 4) << 2) | ((v[l + 64] >> 4) << 4) | ((v[l + 96] >> 4) << 6));
      }
    }
    store_block(dst, b, blk);
  }
}

}  // namespace brisk::gguf_encode
