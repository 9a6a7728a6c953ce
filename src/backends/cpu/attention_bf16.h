#pragma once
// The two multiply-add passes of prefill attention (attention.cc's attend_many) on AVX512-BF16 dot
// products, for --bf16-fast: queries, keys, probabilities and values are rounded to bf16 (RNE),
// every sum is fp32, and each vdpbf16ps does two multiply-adds per lane. The softmax between the
// passes stays fp32. Compiled with AVX512-BF16 (src/CMakeLists.txt); call only where
// cpu_features() has it.
#include <cstdint>

namespace brisk::cpu::attention_bf16 {

// 32-bit words of scratch the two passes need for one unit.
int64_t scratch_words(int64_t n_keys, int64_t width, int64_t head_dim);

// probs[j * width + a] = scale * <q[a], k_rows[j]> for j < round_up(n_keys, 4) (keys past n_keys
// repeat the last one) and a < width (queries past n_queries are zero).
void scores(const float* const* q, int64_t n_queries, int64_t width, const float* const* k_rows,
            int64_t n_keys, int64_t head_dim, float scale, uint32_t* scratch, float* probs);

// out_block[a * padded_dim + d] = sum over j < n_keys of probs[j * width + a] * v_rows[j][d], for
// a < width (a multiple of 8) and d < padded_dim (value rows readable and zero-padded that far).
void values(const float* probs, int64_t width, const float* const* v_rows, int64_t n_keys, int64_t padded_dim,
            uint32_t* scratch, float* out_block);

}  // namespace brisk::cpu::attention_bf16
