#pragma once
// The two multiply-add passes of prefill attention (attention.cc's attend_many) on AVX512-BF16 dot
// products, for --bf16-fast: queries, keys, probabilities and values are rounded to bf16 (RNE),
// every sum is fp32, and each vdpbf16ps does two multiply-adds per lane. The softmax between the
// passes stays fp32. Compiled with AVX512-BF16 (src/CMakeLists.txt); call only where
// cpu_features() has it.
#include <cstdint>

namespace brisk::cpu::attention_bf16 {

// Keys as element pairs, row by row: word j * ceil(head_dim / 2) + i = (k_j[2i], k_j[2i + 1]) in
// bf16, an odd head_dim's last element paired with 0. key_pair_words(n_keys, head_dim) words.
int64_t key_pair_words(int64_t n_keys, int64_t head_dim);
void keys_to_pairs(const float* const* k_rows, int64_t n_keys, int64_t head_dim, uint32_t* out);

// Values as key pairs: word j * padded_dim + d = (v_2j[d], v_2j+1[d]) in bf16, an odd count's last
// row paired with zeros; rows readable (zero-padded) to padded_dim, a multiple of 16.
// value_pair_words(n_keys, padded_dim) words. Pairs of a prefix of the keys are a prefix of these.
int64_t value_pair_words(int64_t n_keys, int64_t padded_dim);
void values_to_pairs(const float* const* v_rows, int64_t n_keys, int64_t padded_dim, uint32_t* out);

// 32-bit words of scratch the two passes need for one unit.
int64_t scratch_words(int64_t n_keys, int64_t width, int64_t head_dim);

// probs[j * width + a] = scale * <q[a], k_j> for j < round_up(n_keys, 4) (keys past n_keys
// repeat the last one) and a < width (queries past n_queries are zero); k_pairs from keys_to_pairs.
void scores(const float* const* q, int64_t n_queries, int64_t width, const uint32_t* k_pairs, int64_t n_keys,
            int64_t head_dim, float scale, uint32_t* scratch, float* probs);

// out_block[a * padded_dim + d] = sum over j < n_keys of probs[j * width + a] * v_j[d], for
// a < width (a multiple of 8) and d < padded_dim; v_pairs from values_to_pairs over at least
// n_keys keys (a pair that straddles n_keys meets a zero probability).
void values(const float* probs, int64_t width, const uint32_t* v_pairs, int64_t n_keys, int64_t padded_dim,
            uint32_t* scratch, float* out_block);

}  // namespace brisk::cpu::attention_bf16
