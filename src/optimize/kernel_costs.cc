#include "optimize/kernel_costs.h"

#include <chrono>
#include <cstring>
#include <map>
#include <tuple>

#include "core/splitmix64.h"
#include "core/thread_pool.h"
#include "runtime/bench.h"

namespace brisk::recipe {

namespace {

// Calls per timing: enough that a ~10 us product's median is stable, few enough for big shapes.
constexpr int kWarmup = 3;
constexpr int kDecodeReps = 64;
constexpr int kPrefillReps = 5;
// A device backend runs calls asynchronously: each sample times this many calls back to back
// and one wait for the last (a device-to-host copy, whose latency is then spread over them as a
// step spreads its one wait over many kernels); on the CPU a call returns when done, and each
// sample is one call.
constexpr int kDeviceCallsPerSample = 8;

std::vector<float> random_values(size_t n, uint64_t seed) {
  SplitMix64 rng{seed};
  std::vector<float> v(n);
  for (float& x : v) x = (float(rng.next() >> 40) / float(1 << 24) * 2.0f - 1.0f) * 0.05f;
  return v;
}

// The median seconds of one call of `run` (after a warm-up): samples of `calls` calls each,
// ended by `wait` (which returns once the backend has finished them).
template <class Run, class Wait>
double median_seconds(int reps, int calls, Run run, Wait wait) {
  for (int i = 0; i < kWarmup; ++i) run();
  wait();
  std::vector<double> seconds;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int c = 0; c < calls; ++c) run();
    wait();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / calls);
  }
  return median(seconds);
}

// A matrix of the shape in the candidate's format (keep: the stored dtype; low-rank: two factors
// in it), on the host.
struct HostMatrix {
  std::vector<std::vector<uint8_t>> encoded;
  QuantizedMatrix quantized;
  std::vector<Tensor> tensors;  // the weight, or the input factor then the output factor
};

void make_host(const MatrixShape& m, const Candidate& cand, HostMatrix& out, ThreadPool& pool) {
  const uint64_t seed = uint64_t(m.rows * 31 + m.cols);
  auto stored = [&](int64_t rows, int64_t cols) {  // random values in the stored (float) dtype
    const std::vector<float> v = random_values(size_t(rows * cols), seed + out.tensors.size());
    out.encoded.push_back(encode_floats(v.data(), v.size(), m.stored));
    return Tensor{out.encoded.back().data(), m.stored, {rows, cols}};
  };
  if (cand.low_rank) {
    const int64_t rank = factor_rank(cand, m.rows, m.cols);
    out.tensors.push_back(stored(rank, m.cols));
    out.tensors.push_back(stored(m.rows, rank));
  } else if (cand.spec) {
    out.quantized =
        candidate_matrix(cand, random_values(size_t(m.rows * m.cols), seed), m.rows, m.cols, nullptr, m.tensor, &pool).value();
    out.tensors.push_back(out.quantized.tensor);
  } else {
    out.tensors.push_back(stored(m.rows, m.cols));
  }
}

// Bytes the timed copies of a group may take at most.
constexpr uint64_t kMaxCopyBytes = uint64_t(1) << 30;

// The group's products as one forward issues them: the matrices that read one input in one call
// (q/k/v, gate/up: fused where the backend fuses them), at one row (decode) and at prefill_rows
// rows (seconds per call). A decode step reads every weight of the model once, so a group's
// matrices are never in cache when its turn comes; timing one copy over and over would measure
// them cache-hot (a 0.8 MB matrix sits in L2). Each call therefore reads the next of several
// copies, together about the model's working set.
std::pair<double, double> time_group(const BackendOptions& where, const SearchGroup& g, const Candidate& cand,
                                     int64_t prefill_rows, uint64_t working_set) {
  std::unique_ptr<Backend> made = make_backend(where).value();  // the caller made one already: it can be made
  Backend& backend = *made;  // its copies are freed with it
  std::vector<HostMatrix> host(g.matrices.size());
  {
    ThreadPool pool(where.threads);  // gone (its threads joined) before anything is timed
    for (size_t i = 0; i < host.size(); ++i) make_host(g.matrices[i], cand, host[i], pool);
  }
  std::vector<std::vector<Linear>> copies;  // each upload is the backend's own copy
  // A backend that reads host weights in place (the CPU with --mmap) would hand back the same
  // memory every time: it gets a host copy of its own to read for each copy after the first.
  std::vector<std::unique_ptr<uint8_t[]>> in_place;
  uint64_t bytes = 0;
  auto upload = [&](const Tensor& t) {
    Tensor uploaded = backend.upload_matrix(t);
    if (uploaded.data == t.data && copies.size() > 1) {
      in_place.push_back(std::make_unique<uint8_t[]>(t.nbytes()));
      std::memcpy(in_place.back().get(), t.data, t.nbytes());
      Tensor clone = t;
      clone.data = in_place.back().get();
      uploaded = backend.upload_matrix(clone);
    }
    bytes += uploaded.nbytes();
    return uploaded;
  };
  do {
    std::vector<Linear>& w = copies.emplace_back();
    for (const HostMatrix& h : host) {
      Linear& l = w.emplace_back();
      if (h.tensors.size() == 2) l.input_factor = upload(h.tensors[0]);
      l.weight = upload(h.tensors.back());
    }
  } while (bytes < working_set && bytes * (copies.size() + 1) / copies.size() <= kMaxCopyBytes);
  const int64_t k = g.matrices.front().cols;
  const std::vector<float> host_x = random_values(size_t(prefill_rows * k), 7);
  Buffer x = backend.allocate(host_x.size());
  backend.copy_to_device(x.data(), host_x.data(), host_x.size());
  std::vector<Buffer> y;
  for (const MatrixShape& shape : g.matrices) y.push_back(backend.allocate(size_t(prefill_rows * shape.rows)));
  using Out = Backend::LinearOutput;
  size_t next = 0;
  float last = 0;
  auto seconds_at = [&](int64_t m, int reps) {
    return median_seconds(
        reps, backend.device() == Device::CPU ? 1 : kDeviceCallsPerSample,
        [&] {
          const std::vector<Linear>& w = copies[next++ % copies.size()];
          switch (w.size()) {
            case 1: backend.linear(x.data(), m, w[0], y[0].data()); break;
            case 2: backend.linear_same_input(x.data(), m, {Out{&w[0], y[0].data()}, Out{&w[1], y[1].data()}}); break;
            default:
              backend.linear_same_input(x.data(), m, {Out{&w[0], y[0].data()}, Out{&w[1], y[1].data()}, Out{&w[2], y[2].data()}});
              for (size_t i = 3; i < w.size(); ++i) backend.linear(x.data(), m, w[i], y[i].data());
          }
        },
        [&] { backend.copy_to_host(&last, y.back().data(), 1); });
  };
  return {seconds_at(1, kDecodeReps), seconds_at(prefill_rows, kPrefillReps)};
}

}  // namespace

GroupTimes time_groups(const std::vector<SearchGroup>& groups, const std::vector<Candidate>& candidates,
                       const BackendOptions& where, uint64_t working_set, int64_t prefill_rows) {
  // Groups of one shape list in one stored form (runtime dtype, pruned density and pattern, rank) take
  // the same time, whatever chose the codes (w4 and w4-gptq): each is timed once.
  using Form = std::tuple<std::vector<std::pair<int64_t, int64_t>>, DType, double, int64_t, int64_t, double>;
  std::map<Form, std::pair<double, double>> timed;
  GroupTimes t;
  t.decode.assign(groups.size(), std::vector<std::optional<double>>(candidates.size()));
  t.prefill_per_token = t.decode;
  for (size_t g = 0; g < groups.size(); ++g)
    for (size_t c = 0; c < candidates.size(); ++c) {
      if (!holds(groups[g], candidates[c])) continue;
      std::vector<std::pair<int64_t, int64_t>> shapes;
      for (const MatrixShape& m : groups[g].matrices) shapes.emplace_back(m.rows, m.cols);
      const Candidate& cand = candidates[c];
      const DType dtype = cand.spec ? runtime_dtype(cand.spec->scheme) : groups[g].matrices.front().stored;
      const double sparsity = cand.prune ? cand.prune->sparsity : -1.0;  // -1: not pruned
      const calib::SparsityPattern pattern = cand.prune ? cand.prune->pattern : calib::SparsityPattern{};
      auto [it, added] = timed.try_emplace(Form{shapes, dtype, sparsity, pattern.keep, pattern.group,
                                                cand.low_rank.value_or(0)});
      if (added) {
        const auto [decode, prefill] = time_group(where, groups[g], candidates[c], prefill_rows, working_set);
        it->second = {decode, prefill / double(prefill_rows)};
      }
      t.decode[g][c] = it->second.first;
      t.prefill_per_token[g][c] = it->second.second;
    }
  return t;
}

}  // namespace brisk::recipe
