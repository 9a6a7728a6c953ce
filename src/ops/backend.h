// The ops a model forward pass calls, behind one interface per device. Activations are fp32
// buffers in the backend's memory (allocated through it); weights are Tensors in their stored
// dtype, moved to the backend's memory once with upload(). Models call these directly; a backend
// decides threads, SIMD and kernels.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <vector>

#include "core/error.h"
#include "core/kv_dtype.h"
#include "core/tensor.h"
#include "ops/linear.h"
#include "ops/sampling.h"

namespace brisk {

class Backend;

// fp32 device memory owned by a backend (host memory on the CPU backend).
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend* owner, float* data, size_t size) : owner_(owner), data_(data), size_(size) {}
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  float* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  Backend* owner_ = nullptr;
  float* data_ = nullptr;
  size_t size_ = 0;
};

enum class Accumulate : bool { No, Yes };

// Row invariance of short passes: a forward pass of at most this many rows computes each row bit
// for bit as a pass of that row alone would (every matmul sums a row in the one-row order,
// attention takes each query alone), on the CPU backend with float weights. Speculative decoding
// checks a draft's proposals in one such pass, so it draws exactly what plain decoding draws; a
// small batch of sequences decodes each exactly as alone. Longer passes (prefill) may sum in other
// orders: their rows agree with one-row passes to rounding only.
constexpr int64_t kDecodeOrderRows = 16;

// Where the sequences of one forward batch sit in the rows and in the paged KV cache. The arrays
// live in the backend's memory (filled once per forward call); the counts are host values so a
// backend can size its launches. Row r of the batch holds sequence s's position
// seqs[s].first_pos + (r - seqs[s].first_row); key position p of sequence s lives in cache slot
// block_tables[seqs[s].table_offset + p / block_size] * block_size + p % block_size.
struct SequenceSpan {
  int32_t first_row;     // its first row in the batch
  int32_t n_rows;        // its rows (queries) in this call
  int32_t first_pos;     // position of its first row; it attends keys 0..first_pos + n_rows - 1
  int32_t table_offset;  // where its block table starts in block_tables
};
// Causal: a query at position p sees keys up to p (decoders). Bidirectional: every query of a
// sequence's chunk sees all its keys, up to the chunk's last position (encoders: BERT).
enum class AttentionMask : uint8_t { Causal, Bidirectional };

// How attention turns scores into weights, beyond causal softmax(q . k * scale).
struct AttentionParams {
  float scale = 1.0f;
  float softcap = 0.0f;  // > 0: scores become softcap * tanh(score / softcap) before the softmax (Gemma-2)
  int64_t window = 0;    // > 0: a query at position p sees keys p - window + 1 .. p only (sliding window; causal)
  AttentionMask mask = AttentionMask::Causal;
  AttentionParams(float scale_) : scale(scale_) {}  // plain causal attention (implicit on purpose)
  AttentionParams(float scale_, float softcap_, int64_t window_, AttentionMask mask_ = AttentionMask::Causal)
      : scale(scale_), softcap(softcap_), window(window_), mask(mask_) {}
  // The first key position a query at position `pos` sees.
  int64_t first_key(int64_t pos) const { return window > 0 && pos >= window ? pos - window + 1 : 0; }
  // One past the last key position a query at `pos` sees, in a chunk ending at position `chunk_end`.
  int64_t end_key(int64_t pos, int64_t chunk_end) const { return mask == AttentionMask::Causal ? pos + 1 : chunk_end; }
};

struct AttentionBatch {
  const SequenceSpan* seqs = nullptr;     // [n_seqs], backend memory
  const int32_t* block_tables = nullptr;  // backend memory
  const SequenceSpan* host_seqs = nullptr;     // the same spans in host memory
  const int32_t* host_block_tables = nullptr;  // the same tables in host memory
  int64_t n_seqs = 0;
  int64_t n_rows = 0;         // total rows
  int64_t block_size = 16;
  int64_t max_rows = 0;       // the most rows any one sequence has
  int64_t max_keys = 0;       // the most keys any one sequence attends
};

// One layer's paged keys and values (models/kv_cache.h) in the backend's memory: k and v are
// [slots, n_kv_heads, head_dim] elements of `dtype`; for I8/F8 each (slot, kv head) row also has
// an fp32 scale in k_scales/v_scales [slots, n_kv_heads] (value = code * scale; null otherwise).
// Backends quantize in store_kv and dequantize as attention loads; the math stays fp32.
struct KvPools {
  KvDtype dtype = KvDtype::F32;
  void* k = nullptr;
  void* v = nullptr;
  float* k_scales = nullptr;
  float* v_scales = nullptr;
  int64_t n_kv_heads = 0, head_dim = 0;
  int64_t row() const { return n_kv_heads * head_dim; }  // elements per slot
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual Device device() const = 0;  // where this backend's memory lives

  // Memory. Buffers come zero-filled.
  virtual Buffer allocate(size_t n_floats) = 0;
  // allocate() that reports running out of memory as an error (naming the request and what is
  // free) instead of stopping the process; for large user-sized buffers (the KV cache).
  virtual Result<Buffer> try_allocate(size_t n_floats) { return allocate(n_floats); }
  virtual void release(float* data) = 0;
  // A weight in this backend's memory (the CPU backend uses the mapped original in place).
  virtual Tensor upload(const Tensor& host_tensor) = 0;
  // upload() of a matrix that only matmuls read (never gathered by row): the backend may store
  // it in a layout of its own (Tensor::block_order).
  virtual Tensor upload_matrix(const Tensor& host_tensor) { return upload(host_tensor); }
  // Moves uploaded matrices that one matmul_same_input call multiplies by the same x (q/k/v,
  // gate/up) into one allocation, back to back in the given order, where that lets the backend
  // run them as one pass; updates the tensors' data. Called once after loading; by default (and
  // where the backend cannot) they stay where they are.
  virtual void place_adjacent(std::initializer_list<Tensor*> matrices) { (void)matrices; }
  // Gives back the memory of a weight that upload()/upload_matrix() returned, before the backend
  // goes (a matrix swapped in for a while: brisk optimize's candidates). Nothing to give where the
  // weight is the host's own (the CPU backend's mapped placement); the CPU backend's resident
  // copies sit in chunks that live as long as it does.
  virtual void release_weight(const Tensor& uploaded) { (void)uploaded; }
  virtual void copy_to_device(float* dst, const float* host_src, size_t n) = 0;
  virtual void copy_to_host(float* host_dst, const float* src, size_t n) = 0;

  // y[m, n] = x[m, k] · w[n, k]^T (+ bias[n]); see ref::matmul.
  virtual void matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias,
                      float* y) = 0;
  // One matmul per output, all of the same x (q/k/v, gate/up). The CPU backend runs them as one
  // parallel job (one fork/join and one activation conversion instead of one per matmul).
  struct MatmulOutput {
    const Tensor* w;
    const float* bias;  // may be null
    float* y;
  };
  virtual void matmul_same_input(const float* x, int64_t m, int64_t k, std::initializer_list<MatmulOutput> outs) {
    for (const MatmulOutput& o : outs) matmul(x, m, k, *o.w, o.bias, o.y);
  }

  // The SwiGLU input of an MLP: gate.y = silu(x · gate.w^T + gate.bias) * (x · up.w^T + up.bias),
  // [m, n] each; up.y is scratch of the same size that backends may leave untouched. The result
  // equals matmul_same_input({gate, up}) followed by silu_mul, which is the default; a backend may
  // form the product as each output value is summed (no second pass, no up.y round trip).
  virtual void matmul_swiglu(const float* x, int64_t m, int64_t k, const MatmulOutput& gate,
                             const MatmulOutput& up) {
    matmul_same_input(x, m, k, {gate, up});
    silu_mul(gate.y, up.y, gate.y, m * gate.w->dim(0));
  }

  // Models call these on their Linear slots; they reduce to the matmul family above, which is what
  // backends implement. A new weight form (low-rank pair, 2:4, shard) changes these, not models.
  struct LinearOutput {
    const Linear* layer;
    float* y;
  };
  static MatmulOutput as_matmul(const LinearOutput& o) { return {&o.layer->weight, o.layer->bias_data(), o.y}; }
  static bool any_factored(std::initializer_list<LinearOutput> outs) {
    for (const LinearOutput& o : outs)
      if (o.layer->factored()) return true;
    return false;
  }
  // Working memory for a factored Linear's rank-wide middle: n_floats in this backend's memory,
  // valid until the next call. It only grows, and a call that needs no more returns the same
  // pointer (so a recorded pass that used it replays on it). The default serves host memory.
  virtual float* linear_scratch(size_t n_floats);
  void linear(const float* x, int64_t m, const Linear& layer, float* y) {
    if (layer.factored()) {  // two products through the rank-wide middle
      float* middle = linear_scratch(size_t(m * layer.rank()));
      matmul(x, m, layer.in_features(), layer.input_factor, nullptr, middle);
      return matmul(middle, m, layer.rank(), layer.weight, layer.bias_data(), y);
    }
    matmul(x, m, layer.in_features(), layer.weight, layer.bias_data(), y);
  }
  // Two or three layers of one input (gate/up, q/k/v).
  void linear_same_input(const float* x, int64_t m, std::initializer_list<LinearOutput> outs) {
    const LinearOutput* o = outs.begin();
    if (any_factored(outs)) {
      for (const LinearOutput& out : outs) linear(x, m, *out.layer, out.y);
      return;
    }
    const int64_t k = o[0].layer->in_features();
    if (outs.size() == 2) return matmul_same_input(x, m, k, {as_matmul(o[0]), as_matmul(o[1])});
    BRISK_CHECK(outs.size() == 3, "linear_same_input: two or three layers");
    matmul_same_input(x, m, k, {as_matmul(o[0]), as_matmul(o[1]), as_matmul(o[2])});
  }
  void linear_swiglu(const float* x, int64_t m, const LinearOutput& gate, const LinearOutput& up) {
    if (any_factored({gate, up})) {
      linear(x, m, *gate.layer, gate.y);
      linear(x, m, *up.layer, up.y);
      return silu_mul(gate.y, up.y, gate.y, m * gate.layer->out_features());
    }
    matmul_swiglu(x, m, gate.layer->in_features(), as_matmul(gate), as_matmul(up));
  }
  void place_adjacent(std::initializer_list<Linear*> layers) {
    Linear* const* l = layers.begin();
    for (const Linear* layer : layers)
      if (layer->factored()) return;  // two products each: nothing to run as one pass
    if (layers.size() == 2) return place_adjacent({&l[0]->weight, &l[1]->weight});
    BRISK_CHECK(layers.size() == 3, "place_adjacent: two or three layers");
    place_adjacent({&l[0]->weight, &l[1]->weight, &l[2]->weight});
  }

  // Causal attention for every sequence of a batch over its paged cache; see ref::attention.
  // q/out: [rows, n_heads, kv.head_dim]; n_heads a multiple of kv.n_kv_heads.
  virtual void attention(const float* q, const KvPools& kv, float* out, const AttentionBatch& batch,
                         int64_t n_heads, const AttentionParams& params) = 0;
  // kv[slots[r]] = row r of k and of v (rows of kv.row() floats, src_stride apart), converted to
  // kv.dtype (one scale per kv head row for I8/F8).
  virtual void store_kv(const float* k, const float* v, int64_t rows, int64_t src_stride,
                        const int32_t* slots, const KvPools& kv) = 0;

  // out[r] (+)= table[ids[r]] for r < n, table [rows, d] in any float dtype; ids in backend memory
  // (so a recorded pass reads each step's ids from the same buffer).
  virtual void gather_rows(const Tensor& table, const int32_t* ids, int64_t n, float* out,
                           Accumulate accumulate) = 0;
  // dst[r, 0:cols] = src[r, 0:cols] for r < rows, with row strides in floats.
  virtual void copy_2d(const float* src, int64_t src_stride, float* dst, int64_t dst_stride,
                       int64_t rows, int64_t cols) = 0;

  virtual void rms_norm(const float* x, const float* weight, int64_t rows, int64_t d, float eps,
                        float* y) = 0;
  // The residual step of a pre-norm block: x += h, then y = rms_norm(x) (y may be h). Backends
  // may fuse the two passes; the result is the same as add() followed by rms_norm().
  virtual void add_rms_norm(float* x, const float* h, const float* weight, int64_t rows, int64_t d,
                            float eps, float* y) {
    add(x, h, rows * d);
    rms_norm(x, weight, rows, d, eps, y);
  }
  virtual void layer_norm(const float* x, const float* weight, const float* bias, int64_t rows,
                          int64_t d, float eps, float* y) = 0;
  // Rotary embedding in place on the queries q [rows, n_heads, head_dim] and the keys k [rows,
  // n_kv_heads, head_dim] (k may be null with n_kv_heads 0), row r at position positions[r]
  // (backend memory); cos/sin tables are [n_positions, head_dim/2] in this backend's memory.
  // See ref::rope, which the two tensors each follow.
  virtual void rope(float* q, float* k, int64_t rows, int64_t n_heads, int64_t n_kv_heads,
                    int64_t head_dim, const int32_t* positions, const float* cos_table,
                    const float* sin_table) = 0;
  // The attention inputs of one layer: rope() on q [rows, n_heads, kv.head_dim] and k, then
  // store_kv(k, v, rows, kv.row(), slots, kv) (k and v rows kv.row() floats apart). The default
  // makes the two calls; a backend may do both in one pass.
  virtual void rope_store_kv(float* q, float* k, const float* v, int64_t rows, int64_t n_heads,
                             const int32_t* positions, const float* cos_table, const float* sin_table,
                             const int32_t* slots, const KvPools& kv) {
    rope(q, k, rows, n_heads, kv.n_kv_heads, kv.head_dim, positions, cos_table, sin_table);
    store_kv(k, v, rows, kv.row(), slots, kv);
  }
  virtual void silu_mul(const float* gate, const float* up, float* out, int64_t n) = 0;
  virtual void gelu_tanh(float* x, int64_t n) = 0;
  virtual void add(float* x, const float* y, int64_t n) = 0;  // x += y
  virtual void mul(float* x, const float* y, int64_t n) = 0;  // x *= y (GeGLU's gate times up)
  virtual void scale(float* x, int64_t n, float s) = 0;       // x *= s (Gemma's embedding scale)
  virtual void soft_cap(float* x, int64_t n, float cap) = 0;  // x = cap * tanh(x / cap) (Gemma-2 logits)
  virtual void gelu_erf(float* x, int64_t n) = 0;             // exact GELU (BERT's "gelu"), in place

  // ids[r] = the index of the largest value of row r of logits [rows, vocab] (the first one on a
  // tie, as std::max_element); ids in backend memory. Greedy sampling without moving the rows.
  virtual void argmax_rows(const float* logits, int64_t rows, int64_t vocab, int32_t* ids) = 0;
  // ids[r] = the token drawn from row r of logits [rows, vocab] as ops/sampling.h defines it
  // (allowed mask, penalties, temperature, top-k, top-p, min-p, a Philox-seeded draw), with row
  // r's parameters params[r], the penalized tokens its params point to in counts and its mask in
  // allowed (null when no row has one); all in backend memory. Logits are edited in place.
  virtual void sample_rows(float* logits, int64_t rows, int64_t vocab, const SampleRowParams* params,
                           const TokenCount* counts, const uint32_t* allowed, int32_t* ids) = 0;

  // Recording a fixed sequence of ops once and replaying it (CUDA graphs), for callers that run
  // the same pass many times (runtime/decode_runner). Between begin_capture and end_capture the ops
  // are recorded, not run: they must not copy to the host, allocate, or read host arrays that
  // change later. Backends without it return nullptr from end_capture (and record nothing).
  class Recording {
   public:
    virtual ~Recording() = default;
    virtual void replay() = 0;  // enqueues the recorded ops again, as if called in the same order
  };
  virtual bool can_record() const { return false; }
  virtual void begin_capture() {}
  virtual std::unique_ptr<Recording> end_capture() { return nullptr; }

 private:
  std::vector<float> host_linear_scratch_;
};

}  // namespace brisk
