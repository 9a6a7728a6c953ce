// The one definition of how a token is drawn from a logits row, shared by the host reference
// (ops/reference_sampling.cc, which runtime/Sampler uses) and the CUDA kernel
// (backends/cuda/sampling.cu): the parameter layout both read and the per-token math both call,
// so CPU and GPU pick the same token for the same seed (up to float ties).
//
// Per row, in order:
//   0. constrained decoding: a token the row's allowed mask leaves out (bit t % 32 of word t / 32,
//      from first_allowed_word; grammar/token_masks.h) gets the logit -inf, so it is never drawn;
//   1. on the listed tokens (TokenCount): repetition penalty (transformers' rule: positive logits
//      divided, negative multiplied) on tokens in the prompt or output, then presence + frequency *
//      count subtracted from tokens the output already holds, then the token's logit_bias added;
//   0. a row with a NaN, or whose largest logit is +-inf, answers kNonFiniteLogits;
//   2. temperature <= 0: the argmax (lowest index on a tie), as Backend::argmax_rows;
//   3. otherwise z = (l - l_max) / temperature, and a token survives when all of:
//      top-k  (0 < k < vocab): fewer than k tokens have a strictly larger logit (ties at the k-th
//             value all survive, as transformers' TopKLogitsWarper);
//      top-p  (p < 1): among the top-k survivors, the softmax mass of tokens with a strictly larger
//             logit is below p (so equal logits stay or go together; the best always stays);
//      min-p  (m > 0): exp(z) >= m, i.e. p(token) >= m * p(best) (the best always stays);
//   4. the draw: the survivor with the largest z + Gumbel noise, where the noise of token i at
//      step s comes from Philox-4x32-10 keyed by the seed with counter (i / 4, s) (word i % 4).
//      argmax(z + Gumbel) draws from softmax(z) over the survivors with no sort and no prefix
//      sum, and each token's noise depends only on (seed, step, token), not on the order the
//      tokens were visited in: the property that lets a GPU block agree with the host loop.
#pragma once

#include <math.h>
#include <string.h>

#include <cstdint>

#if defined(__CUDACC__)
#define BRISK_HOST_DEVICE __host__ __device__
#else
#define BRISK_HOST_DEVICE
#endif

namespace brisk {

// The id argmax_rows / sample_rows give a row holding a NaN or whose largest logit is not finite
// (a broken model or checkpoint): callers fail the request instead of emitting a token.
constexpr int32_t kNonFiniteLogits = -1;

// A token step 1 acts on: listed when it is in the prompt (repetition penalty on) or in the output
// so far, or when the request biases it (logit_bias). `generated` counts its occurrences in the
// output (0: prompt only). A row's list holds each token at most once.
struct TokenCount {
  int32_t token;
  int32_t generated;
  int32_t in_context;  // 1: in the prompt or output (the repetition penalty applies); 0: bias only
  float bias;          // added after the penalties (OpenAI's logit_bias); 0: none
};
static_assert(sizeof(TokenCount) == 16, "TokenCount travels to the device as raw bytes");

// One row's sampling parameters, as the host builds them each step (runtime/Sampler) and the
// device reads them: plain old data, in backend memory for Backend::sample_rows.
struct SampleRowParams {
  uint64_t seed = 0;
  uint64_t step = 0;                 // tokens this sequence has drawn before: the RNG counter
  float temperature = 0.0f;          // <= 0: greedy
  int32_t top_k = 0;                 // <= 0 or >= vocab: off
  float top_p = 1.0f;                // >= 1: off
  float min_p = 0.0f;                // <= 0: off
  float repetition_penalty = 1.0f;   // 1: off
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int32_t first_count = 0;           // this row's TokenCount entries: [first_count, +n_counts)
  int32_t n_counts = 0;
  int32_t first_allowed_word = -1;   // this row's allowed mask in the batch's words; -1: no mask
};
static_assert(sizeof(SampleRowParams) == 56, "SampleRowParams travels to the device as raw bytes");

namespace sampling {

// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator, so any (key, counter) is computed directly, in any order, on any device.
struct Philox4 {
  uint32_t v[4];
};

BRISK_HOST_DEVICE inline Philox4 philox4x32_10(Philox4 counter, uint32_t key0, uint32_t key1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  uint32_t* c = counter.v;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t(kMul0) * c[0], p1 = uint64_t(kMul1) * c[2];
    const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    const uint32_t next[4] = {hi1 ^ c[1] ^ key0, lo1, hi0 ^ c[3] ^ key1, lo0};
    for (int i = 0; i < 4; ++i) c[i] = next[i];
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  return counter;
}

// Token `token`'s uniform draw at `step`: an odd multiple of 2^-24, so strictly inside (0, 1) and
// exact in float (no rounding that could differ between host and device).
BRISK_HOST_DEVICE inline float token_uniform(uint64_t seed, uint64_t step, int64_t token) {
  const Philox4 counter = {{uint32_t(uint64_t(token) >> 2), uint32_t(step), uint32_t(step >> 32), 0u}};
  const Philox4 bits = philox4x32_10(counter, uint32_t(seed), uint32_t(seed >> 32));
  return float((bits.v[token & 3] >> 8) | 1u) * (1.0f / 16777216.0f);
}

// Standard Gumbel noise for the draw (step 4 above).
BRISK_HOST_DEVICE inline float gumbel_noise(uint64_t seed, uint64_t step, int64_t token) {
  return -logf(-logf(token_uniform(seed, step, token)));
}

// Step 1 for one listed token.
BRISK_HOST_DEVICE inline float penalized_logit(float logit, const TokenCount& listed, const SampleRowParams& p) {
  if (listed.in_context && p.repetition_penalty != 1.0f)
    logit = logit > 0 ? logit / p.repetition_penalty : logit * p.repetition_penalty;
  if (listed.generated > 0) logit -= p.presence_penalty + p.frequency_penalty * float(listed.generated);
  return logit + listed.bias;
}

// z of step 3; exactly rounded on both sides (IEEE subtraction and division).
BRISK_HOST_DEVICE inline float scaled_logit(float logit, float max_logit, float temperature) {
  return (logit - max_logit) / temperature;
}

BRISK_HOST_DEVICE inline bool passes_min_p(float z, float min_p) {
  return min_p <= 0.0f || z >= 0.0f || expf(z) >= min_p;
}

// Step 0 for one token; `allowed` is the row's mask (null: unconstrained).
BRISK_HOST_DEVICE inline bool token_allowed(const uint32_t* allowed, int64_t token) {
  return allowed == nullptr || ((allowed[token >> 5] >> (token & 31)) & 1u) != 0;
}

BRISK_HOST_DEVICE inline bool top_k_active(int32_t top_k, int64_t vocab) { return top_k > 0 && top_k < vocab; }

BRISK_HOST_DEVICE inline uint32_t float_bits(float value) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(value);
#else
  uint32_t bits;
  memcpy(&bits, &value, sizeof bits);
  return bits;
#endif
}

// An unsigned key with the order of the float values (and -0 equal to +0), for the device's radix
// select over logits.
BRISK_HOST_DEVICE inline uint32_t order_key(float value) {
  const uint32_t bits = float_bits(value == 0.0f ? 0.0f : value);
  return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}

}  // namespace sampling
}  // namespace brisk
