#include "backends/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "backends/cuda/attention.cuh"
#include "backends/cuda/attention_prefill.cuh"
#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/elementwise.cuh"
#include "backends/cuda/matmul.cuh"
#include "backends/cuda/kv_store.cuh"
#include "backends/cuda/norms.cuh"
#include "backends/cuda/quant_layout.h"
#include "backends/cuda/rope.cuh"
#include "backends/cuda/sampling.cuh"

namespace brisk {

namespace cuda {

std::string cuda_error_text(cudaError_t status) {
  return std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
}

Scratch::~Scratch() {
  if (data_) cudaFree(data_);
  for (void* p : outgrown_) cudaFree(p);
}

bool overlapped_launches_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("BRISK_PDL");
    return !(v && std::string(v) == "0");
  }();
  return enabled;
}

void* Scratch::get(size_t bytes) {
  if (bytes <= bytes_) return data_;
  const size_t grown = std::max(bytes, bytes_ * 2);
  void* p = nullptr;
  BRISK_CUDA_CHECK(cudaMalloc(&p, grown));
  if (zeroed_) BRISK_CUDA_CHECK(cudaMemsetAsync(p, 0, grown, stream_));
  if (data_) outgrown_.push_back(data_);
  data_ = p;
  bytes_ = grown;
  return data_;
}

}  // namespace cuda

namespace {

std::string mib(size_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

std::string out_of_memory(int device, size_t bytes, const char* what, cudaError_t err) {
  size_t free_bytes = 0, total_bytes = 0;
  cudaGetLastError();  // clear the allocation error before asking
  std::string free_text;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess)
    free_text = "; " + mib(free_bytes) + " free of " + mib(total_bytes);
  return "CUDA device " + std::to_string(device) + ": out of memory " + what + " (" +
         mib(bytes) + " requested" + free_text + "; " + cuda::cuda_error_text(err) + ")";
}

}  // namespace

CudaBackend::CudaBackend(int device) : device_(device) {}

Result<std::unique_ptr<CudaBackend>> CudaBackend::create(int device) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    cudaGetLastError();  // the runtime keeps the error; do not leak it into later calls
    return make_error("no CUDA device found (cudaGetDeviceCount: " +
                      (err != cudaSuccess ? cuda::cuda_error_text(err) : std::string("0 devices")) +
                      ")");
  }
  if (device < 0 || device >= count)
    return make_error("CUDA device " + std::to_string(device) + " out of range: " +
                      std::to_string(count) + " device(s) present");
  std::unique_ptr<CudaBackend> backend(new CudaBackend(device));
  BRISK_TRY(backend->init());
  return Result<std::unique_ptr<CudaBackend>>(std::move(backend));
}

Status CudaBackend::init() {
  const std::string where = "CUDA device " + std::to_string(device_);
  cudaError_t err = cudaSetDevice(device_);
  if (err != cudaSuccess) return make_error(where + ": cannot be used (" + cuda::cuda_error_text(err) + ")");
  err = cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device_);
  if (err != cudaSuccess) return make_error(where + ": " + cuda::cuda_error_text(err));
  cudaStream_t stream = nullptr;
  err = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  if (err != cudaSuccess)
    return make_error(where + ": cannot create a stream (" + cuda::cuda_error_text(err) + ")");
  stream_ = stream;
  auto engine = cuda::MatmulEngine::create(stream);
  if (!engine.ok()) return make_error(where + ": " + engine.error().message);
  matmul_ = std::move(engine).value();
  attention_scratch_ = std::make_unique<cuda::Scratch>(stream);
  attention_arrivals_ = std::make_unique<cuda::Scratch>(stream, /*zeroed=*/true);
  linear_middle_ = std::make_unique<cuda::Scratch>(stream);
  return ok_status();
}

// Teardown ignores errors on purpose: a destructor has no one to report to, and a device that
// already failed must not turn into a second abort here.
CudaBackend::~CudaBackend() {
  cudaSetDevice(device_);
  if (stream_) cudaStreamSynchronize(stream_);
  matmul_.reset();
  attention_scratch_.reset();
  attention_arrivals_.reset();
  linear_middle_.reset();
  for (void* p : uploads_) cudaFree(p);
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaBackend::activate() const { BRISK_CUDA_CHECK(cudaSetDevice(device_)); }

float* CudaBackend::linear_scratch(size_t n_floats) {
  activate();
  return static_cast<float*>(linear_middle_->get(n_floats * sizeof(float)));
}

void CudaBackend::synchronize() {
  activate();
  BRISK_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

size_t CudaBackend::memory_in_use() const {
  activate();
  size_t free_bytes = 0, total_bytes = 0;
  BRISK_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return total_bytes - free_bytes;
}

// ---- memory -------------------------------------------------------------------------------------

Result<Buffer> CudaBackend::try_allocate(size_t n_floats) {
  activate();
  BRISK_CHECK(!capturing_, "allocate while recording a pass (size buffers before begin_capture)");
  const size_t bytes = std::max<size_t>(n_floats, 1) * sizeof(float);
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) return make_error(out_of_memory(device_, bytes, "allocating activations", err));
  // Zero-filled, as Backend promises; ordered before any later op on the stream.
  BRISK_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
  return Buffer(this, static_cast<float*>(p), n_floats);
}

Buffer CudaBackend::allocate(size_t n_floats) {
  auto buffer = try_allocate(n_floats);
  BRISK_CHECK(buffer.ok(), buffer.ok() ? std::string() : buffer.error().message);
  return std::move(buffer).value();
}

void CudaBackend::release(float* data) {
  activate();
  BRISK_CUDA_CHECK(cudaStreamSynchronize(stream_));  // queued kernels may still use it
  BRISK_CUDA_CHECK(cudaFree(data));
}

void CudaBackend::release_weight(const Tensor& uploaded) {
  const auto it = std::find(uploads_.begin(), uploads_.end(), uploaded.data);
  if (it == uploads_.end()) return;  // not this backend's own allocation (or given back already)
  uploads_.erase(it);
  activate();
  BRISK_CUDA_CHECK(cudaStreamSynchronize(stream_));  // queued kernels may still read it
  BRISK_CUDA_CHECK(cudaFree(uploaded.data));
}

Result<Tensor> CudaBackend::try_upload(const Tensor& host_tensor) {
  if (host_tensor.device == Device::CUDA) return host_tensor;
  const DType t = host_tensor.dtype;
  const bool quantized = is_block_dtype(t);
  if (t != DType::F32 && t != DType::F16 && t != DType::BF16 && !quantized)
    return make_error("CudaBackend::upload: dtype " + std::string(dtype_name(t)) +
                      " not supported (F32, F16, BF16 or a quantized block format)");
  if (quantized && host_tensor.rank() != 2)
    return make_error("CudaBackend::upload: a " + std::string(dtype_name(t)) + " tensor must be a matrix, got " +
                      shape_string(host_tensor.shape));
  // Block dtypes are repacked into the kernels' layout (quant_layout.h); the rest go as they are.
  std::vector<uint8_t> repacked;
  const void* source = host_tensor.data;
  size_t source_bytes = host_tensor.nbytes();
  if (quantized) {
    repacked.resize(cuda::quant_device_layout(t, host_tensor.dim(0), host_tensor.dim(1)).bytes);
    cuda::repack_for_device(host_tensor, repacked.data());
    source = repacked.data();
    source_bytes = repacked.size();
  }
  activate();
  const size_t bytes = std::max<size_t>(source_bytes, 1);
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess)
    return make_error(out_of_memory(device_, bytes,
                                    ("uploading a " + shape_string(host_tensor.shape) + " weight").c_str(),
                                    err));
  uploads_.push_back(p);
  if (source_bytes > 0)
    // On our stream (not the legacy default one, which a non-blocking stream does not wait for);
    // a pageable source is staged before the call returns, so `repacked` may go right after.
    BRISK_CUDA_CHECK(cudaMemcpyAsync(p, source, source_bytes, cudaMemcpyHostToDevice, stream_));
  Tensor device_tensor = host_tensor;
  device_tensor.data = p;
  device_tensor.device = Device::CUDA;
  return device_tensor;
}

void CudaBackend::place_adjacent(std::initializer_list<Tensor*> matrices) {
  if (matrices.size() < 2) return;
  const Tensor& first = **matrices.begin();
  size_t total = 0;
  bool adjacent = true;
  const auto* next = static_cast<const uint8_t*>(first.data);
  for (const Tensor* t : matrices) {
    const bool owned = std::find(uploads_.begin(), uploads_.end(), t->data) != uploads_.end();
    if (!owned || t->device != Device::CUDA || is_block_dtype(t->dtype) || t->dtype != first.dtype ||
        t->rank() != 2 || t->dim(1) != first.dim(1))
      return;
    adjacent = adjacent && t->data == next;
    next += t->nbytes();
    total += t->nbytes();
  }
  if (adjacent) return;
  activate();
  void* group = nullptr;
  if (cudaMalloc(&group, total) != cudaSuccess) {
    cudaGetLastError();  // not fatal: the matrices just stay apart
    return;
  }
  auto* at = static_cast<uint8_t*>(group);
  for (Tensor* t : matrices) {
    BRISK_CUDA_CHECK(cudaMemcpyAsync(at, t->data, t->nbytes(), cudaMemcpyDeviceToDevice, stream_));
    at += t->nbytes();
  }
  BRISK_CUDA_CHECK(cudaStreamSynchronize(stream_));
  at = static_cast<uint8_t*>(group);
  for (Tensor* t : matrices) {
    BRISK_CUDA_CHECK(cudaFree(t->data));
    uploads_.erase(std::find(uploads_.begin(), uploads_.end(), t->data));
    t->data = at;
    at += t->nbytes();
  }
  // The group is freed once, through its first matrix's address.
  uploads_.push_back(group);
}

Tensor CudaBackend::upload(const Tensor& host_tensor) {
  auto tensor = try_upload(host_tensor);
  BRISK_CHECK(tensor.ok(), tensor.ok() ? std::string() : tensor.error().message);
  return std::move(tensor).value();
}

void CudaBackend::copy_to_device(float* dst, const float* host_src, size_t n) {
  activate();
  BRISK_CHECK(!capturing_, "copy_to_device while recording a pass (upload before begin_capture)");
  if (n == 0) return;
  // Pageable source: the runtime stages it before returning, so host_src may be reused at once.
  BRISK_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, n * sizeof(float), cudaMemcpyHostToDevice, stream_));
}

void CudaBackend::copy_to_host(float* host_dst, const float* src, size_t n) {
  activate();
  BRISK_CHECK(!capturing_, "copy_to_host while recording a pass");
  if (n > 0)
    BRISK_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  BRISK_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

// ---- ops ----------------------------------------------------------------------------------------

void CudaBackend::matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias,
                         float* y) {
  activate();
  matmul_->run(x, m, k, w, bias, y);
}

void CudaBackend::matmul_same_input(const float* x, int64_t m, int64_t k,
                                    std::initializer_list<MatmulOutput> outs) {
  activate();
  if (matmul_->run_same_input(x, m, k, outs)) return;
  for (const MatmulOutput& o : outs) matmul_->run(x, m, k, *o.w, o.bias, o.y);
}

void CudaBackend::matmul_swiglu(const float* x, int64_t m, int64_t k, const MatmulOutput& gate,
                                const MatmulOutput& up) {
  activate();
  if (!matmul_->run_swiglu(x, m, k, gate, up)) Backend::matmul_swiglu(x, m, k, gate, up);
}

bool CudaBackend::uses_low_precision_gemm(int64_t m, int64_t k, const Tensor& w) {
  activate();
  return m > 8 && matmul_->quant_gemm_available(m, k, w);
}

void CudaBackend::attention(const float* q, const KvPools& kv, float* out, const AttentionBatch& batch,
                            int64_t n_heads, const AttentionParams& params) {
  activate();
  cuda::attention(q, kv, out, batch,
                  cuda::AttentionShape{n_heads, kv.n_kv_heads, kv.head_dim, params.scale, params.softcap,
                                       params.window, params.mask},
                  sm_count_, *attention_scratch_, *attention_arrivals_, stream_);
}

bool CudaBackend::uses_tensor_core_attention(const AttentionBatch& batch, int64_t n_heads,
                                             int64_t n_kv_heads, int64_t head_dim) {
  return cuda::prefill_attention_fits(batch,
                                      cuda::AttentionShape{n_heads, n_kv_heads, head_dim, 1.0f});
}

void CudaBackend::store_kv(const float* k, const float* v, int64_t rows, int64_t src_stride,
                           const int32_t* slots, const KvPools& kv) {
  activate();
  cuda::store_kv(k, v, rows, src_stride, slots, kv, stream_);
}

void CudaBackend::gather_rows(const Tensor& table, const int32_t* ids, int64_t n, float* out,
                              Accumulate accumulate) {
  activate();
  cuda::gather_rows(table, ids, n, out, accumulate == Accumulate::Yes, stream_);
}

void CudaBackend::copy_2d(const float* src, int64_t src_stride, float* dst, int64_t dst_stride,
                          int64_t rows, int64_t cols) {
  activate();
  cuda::copy_2d(src, src_stride, dst, dst_stride, rows, cols, stream_);
}

void CudaBackend::rms_norm(const float* x, const float* weight, int64_t rows, int64_t d, float eps,
                           float* y) {
  activate();
  cuda::rms_norm(x, weight, rows, d, eps, y, stream_);
}

void CudaBackend::add_rms_norm(float* x, const float* h, const float* weight, int64_t rows,
                               int64_t d, float eps, float* y) {
  activate();
  cuda::add_rms_norm(x, h, weight, rows, d, eps, y, stream_);
}

void CudaBackend::layer_norm(const float* x, const float* weight, const float* bias, int64_t rows,
                             int64_t d, float eps, float* y) {
  activate();
  cuda::layer_norm(x, weight, bias, rows, d, eps, y, stream_);
}

void CudaBackend::rope(float* q, float* k, int64_t rows, int64_t n_heads, int64_t n_kv_heads,
                       int64_t head_dim, const int32_t* positions, const float* cos_table,
                       const float* sin_table) {
  activate();
  cuda::rope(q, k, rows, n_heads, n_kv_heads, head_dim, positions, cos_table, sin_table, stream_);
}

void CudaBackend::rope_store_kv(float* q, float* k, const float* v, int64_t rows, int64_t n_heads,
                                const int32_t* positions, const float* cos_table, const float* sin_table,
                                const int32_t* slots, const KvPools& kv) {
  activate();
  if (!cuda::rope_store_kv(q, k, v, rows, n_heads, positions, cos_table, sin_table, slots, kv, stream_))
    Backend::rope_store_kv(q, k, v, rows, n_heads, positions, cos_table, sin_table, slots, kv);
}

void CudaBackend::silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  activate();
  cuda::silu_mul(gate, up, out, n, stream_);
}

void CudaBackend::mul(float* x, const float* y, int64_t n) {
  activate();
  cuda::mul(x, y, n, stream_);
}

void CudaBackend::scale(float* x, int64_t n, float s) {
  activate();
  cuda::scale(x, n, s, stream_);
}

void CudaBackend::soft_cap(float* x, int64_t n, float cap) {
  activate();
  cuda::soft_cap(x, n, cap, stream_);
}

void CudaBackend::gelu_erf(float* x, int64_t n) {
  activate();
  cuda::gelu_erf(x, n, stream_);
}

void CudaBackend::gelu_tanh(float* x, int64_t n) {
  activate();
  cuda::gelu_tanh(x, n, stream_);
}

void CudaBackend::add(float* x, const float* y, int64_t n) {
  activate();
  cuda::add(x, y, n, stream_);
}

void CudaBackend::argmax_rows(const float* logits, int64_t rows, int64_t vocab, int32_t* ids) {
  activate();
  cuda::argmax_rows(logits, rows, vocab, ids, stream_);
}

void CudaBackend::sample_rows(float* logits, int64_t rows, int64_t vocab, const SampleRowParams* params,
                              const TokenCount* counts, const uint32_t* allowed, int32_t* ids) {
  activate();
  cuda::sample_rows(logits, rows, vocab, params, counts, allowed, ids, stream_);
}

// ---- recording (CUDA graphs) --------------------------------------------------------------------

namespace {

class CudaRecording final : public Backend::Recording {
 public:
  CudaRecording(cudaGraphExec_t exec, cudaStream_t stream, int device)
      : exec_(exec), stream_(stream), device_(device) {}
  ~CudaRecording() override {
    cudaSetDevice(device_);
    cudaGraphExecDestroy(exec_);
  }
  void replay() override {
    BRISK_CUDA_CHECK(cudaSetDevice(device_));
    BRISK_CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
  }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
  int device_;
};

}  // namespace

void CudaBackend::begin_capture() {
  activate();
  BRISK_CHECK(!capturing_, "begin_capture: already capturing");
  // Thread-local mode: a call on this thread that would break the recording (a synchronization, a
  // host copy) fails loudly instead of silently running once.
  BRISK_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  capturing_ = true;
}

std::unique_ptr<Backend::Recording> CudaBackend::end_capture() {
  activate();
  BRISK_CHECK(capturing_, "end_capture: not capturing");
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  BRISK_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  BRISK_CUDA_CHECK(err);
  return std::make_unique<CudaRecording>(exec, stream_, device_);
}

Result<std::unique_ptr<Backend>> make_cuda_backend(int device) {
  auto backend = CudaBackend::create(device);
  if (!backend.ok()) return backend.error();
  return std::unique_ptr<Backend>(std::move(backend).value());
}

}  // namespace brisk
