#include "compress/gptq.h"

#include <algorithm>
#include <numeric>

#include "compress/calib_linalg.h"
#include "compress/grid_search.h"
#include "compress/obs_sweep.h"
#include "core/thread_pool.h"

namespace brisk::calib {

Result<UnpackedMatrix> gptq(const float* w, int64_t rows, int64_t cols, const std::vector<double>& xtx,
                            const QuantSpec& spec, const GptqOptions& options) {
  BRISK_CHECK(int64_t(xtx.size()) == cols * cols, "gptq: Hessian size does not match the matrix");
  BRISK_TRY(check_grid_spec(spec, cols, "gptq"));
  const QuantTraits& traits = scheme_traits(spec.scheme);
  const int64_t width = group_width(spec, cols), groups = groups_per_row(spec, cols);

  // Dead inputs: the weights never mattered on the calibration text; zero them (exactly
  // representable) and give H a unit diagonal there so it stays invertible.
  std::vector<float> original(w, w + rows * cols);
  // A pruned matrix keeps its zeros (prune, then quantize): they are quantized to the code of 0,
  // exactly 0 on every grid with an integer zero point, and their error spreads like any other.
  std::vector<uint8_t> pruned(size_t(rows * cols));
  for (size_t i = 0; i < pruned.size(); ++i) pruned[i] = original[i] == 0.0f;
  std::vector<double> h = xtx;
  for (int64_t i = 0; i < cols; ++i)
    if (h[size_t(i * cols + i)] == 0) {
      h[size_t(i * cols + i)] = 1;
      for (int64_t r = 0; r < rows; ++r) original[size_t(r * cols + i)] = 0;
    }

  // Visiting order: columns with the largest H_ii (most activation energy) first under act-order.
  std::vector<int64_t> order(static_cast<size_t>(cols));
  std::iota(order.begin(), order.end(), 0);
  const bool act_order = options.act_order == ActOrder::On;
  if (act_order)
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return h[size_t(a * cols + a)] > h[size_t(b * cols + b)];
    });
  const bool static_grids = act_order && options.group_order == GroupOrder::Static;

  std::vector<float> work(size_t(rows * cols));  // W with columns in visiting order, updated in place
  std::vector<double> hp(size_t(cols * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) work[size_t(r * cols + j)] = original[size_t(r * cols + order[size_t(j)])];
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j)
      hp[size_t(i * cols + j)] = h[size_t(order[size_t(i)] * cols + order[size_t(j)])];
  BRISK_ASSIGN(u, inverse_hessian_factor(hp, cols, options.damp));
  hp = {};

  UnpackedMatrix q;
  q.rows = rows;
  q.cols = cols;
  q.spec = spec;
  q.codes.resize(size_t(rows * cols));
  q.dequantized.resize(size_t(rows * cols));
  q.params.resize(size_t(rows * groups));
  if (act_order && !static_grids) q.group_index.resize(size_t(cols));
  // What a column's rounding error costs once the columns after it have compensated: e^2 / U_jj^2
  // (the quantity GPTQ's own updates minimise), by original column. Grids are searched with it.
  std::vector<float> cost(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) {
    const float d = u[size_t(j * cols + j)];
    cost[size_t(order[size_t(j)])] = 1.0f / (d * d);
  }
  // Grids of rows [r0, r0 + n_rows) for one group: each row's own search (grid_search.h), so rows
  // searched apart get the grids they get together.
  auto set_grids = [&](const float* w0, int64_t r0, int64_t n_rows, int64_t n, const float* importance, int64_t group) {
    const std::vector<GroupParams> found = search_grids(w0, n_rows, n, cols, importance, spec, options.grid);
    for (int64_t r = 0; r < n_rows; ++r) q.params[size_t((r0 + r) * groups + group)] = found[size_t(r)];
  };
  // The group of the column visited j-th: contiguous by original column (static), else by visit.
  auto group_of_visit = [&](int64_t j) { return static_grids ? order[size_t(j)] / width : j / width; };
  // Static grids: fitted to the original weights in their contiguous groups, before any update.
  if (static_grids)
    for (int64_t g = 0; g < groups; ++g) set_grids(original.data() + g * width, 0, rows, width, cost.data() + g * width, g);
  std::vector<float> visiting_cost(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) visiting_cost[size_t(j)] = cost[size_t(order[size_t(j)])];
  if (!q.group_index.empty())
    for (int64_t j = 0; j < cols; ++j) q.group_index[size_t(order[size_t(j)])] = int32_t(group_of_visit(j));

  // Rows sweep apart, a block of rows per thread: every choice is per row (grids, codes), so the
  // result is bit for bit the one-thread sweep's (sotu-llama w4 GPTQ: the same file).
  ThreadPool pool(options.threads);
  pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
    float* block_rows = work.data() + r0 * cols;
    obs_sweep(
        block_rows, r1 - r0, cols, u, options.block,
        [&](int64_t j) {  // a group's grid, when its first column is reached, from the current weights
          if (!static_grids && j % width == 0)
            set_grids(block_rows + j, r0, r1 - r0, std::min(width, cols - j), visiting_cost.data() + j, j / width);
        },
        [&](int64_t r, int64_t j, float w) {
          r += r0;
          const int64_t col = order[size_t(j)];
          const GroupParams& p = q.params[size_t(r * groups + group_of_visit(j))];
          const int32_t code = nearest_code(traits, pruned[size_t(r * cols + col)] ? 0.0f : w, p);
          const float value = dequantize_code(traits, code, p);
          q.codes[size_t(r * cols + col)] = int8_t(code);
          q.dequantized[size_t(r * cols + col)] = value;
          return value;
        });
  });
  return q;
}

Result<std::map<std::string, UnpackedMatrix>> gptq_quantize(FloatWeights& weights, const CalibrationStats& stats,
                                                           const QuantSpec& spec, const GptqOptions& options) {
  for (const auto& [name, input] : stats.by_tensor) {
    if (!weights.has(name)) return make_error("gptq: calibrated tensor '" + name + "' is not a model weight");
    BRISK_TRY(check_grid_spec(spec, weights.cols(name), "gptq: tensor '" + name + "'"));
  }
  std::map<std::string, UnpackedMatrix> out;
  for (const auto& [name, input] : stats.by_tensor) {
    std::vector<float>& w = weights.at(name);
    auto q = gptq(w.data(), weights.rows(name), weights.cols(name), input->xtx, spec, options);
    if (!q) return make_error("gptq: tensor '" + name + "': " + q.error().message);
    std::copy(q->dequantized.begin(), q->dequantized.end(), w.begin());  // the model may point at w
    out[name] = std::move(q.value());
  }
  return out;
}

}  // namespace brisk::calib
