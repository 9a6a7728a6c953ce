#include "models/tensor_parallel.h"

#include <algorithm>
#include <memory>

#include "models/architecture.h"

namespace brisk {

namespace {

struct Range {
  int64_t begin, end;  // [begin, end) of a matrix's output or input indices
};

// The output indices rank tp.rank owns of a column-parallel matrix, one range per part (a fused
// q/k/v or gate/up matrix holds several, in order), from the full config.
std::vector<Range> owned_outputs(Role role, const ModelConfig& c, TensorParallelRank tp) {
  const int64_t hd = c.head_dim, heads = c.n_heads / tp.size, ff = c.intermediate_size / tp.size;
  const Range q{tp.rank * heads * hd, (tp.rank + 1) * heads * hd};
  Range kv;
  if (c.n_kv_heads % tp.size == 0) {
    const int64_t per = c.n_kv_heads / tp.size;
    kv = {tp.rank * per * hd, (tp.rank + 1) * per * hd};
  } else {  // fewer kv heads than ranks: the one this rank's query heads read
    const int64_t group = (tp.rank * heads) / (c.n_heads / c.n_kv_heads);
    kv = {group * hd, (group + 1) * hd};
  }
  const Range mlp{tp.rank * ff, (tp.rank + 1) * ff};
  const int64_t q_all = c.n_heads * hd, kv_all = c.n_kv_heads * hd, ff_all = c.intermediate_size;
  switch (role) {
    case Role::AttnQ: return {q};
    case Role::AttnK:
    case Role::AttnV: return {kv};
    case Role::AttnQkv: return {q, {kv.begin + q_all, kv.end + q_all}, {kv.begin + q_all + kv_all, kv.end + q_all + kv_all}};
    case Role::MlpGate:
    case Role::MlpUp: return {mlp};
    case Role::MlpGateUp: return {mlp, {mlp.begin + ff_all, mlp.end + ff_all}};
    default: return {};
  }
}

// The input indices a rank owns of a row-parallel matrix: its query heads' slots (o), its MLP
// channels (down).
Range owned_inputs(Role role, const ModelConfig& c, TensorParallelRank tp) {
  const std::vector<Range> outputs = owned_outputs(role == Role::AttnO ? Role::AttnQ : Role::MlpUp, c, tp);
  return outputs.front();
}

// `t` with only `ranges` of its `axis` (0: rows, 1: columns of the stored [rows, cols]; a vector
// has only rows), as new bytes; shape set to the result's.
Result<std::vector<uint8_t>> take(const Tensor& t, int axis, const std::vector<Range>& ranges, const std::string& name,
                                  std::vector<int64_t>& shape) {
  const int64_t rows = t.shape[0], cols = t.shape.size() > 1 ? t.shape[1] : 1;
  if (t.shape.size() == 1) axis = 0;
  const auto* src = static_cast<const uint8_t*>(t.data);
  const size_t row = row_bytes(t.dtype, cols);
  std::vector<uint8_t> out;
  int64_t kept = 0;
  for (const Range& r : ranges) kept += r.end - r.begin;
  if (axis == 0) {
    for (const Range& r : ranges) out.insert(out.end(), src + size_t(r.begin) * row, src + size_t(r.end) * row);
  } else {
    // Columns of a block dtype: whole blocks only, and only where a row is its blocks alone.
    const int64_t block = dtype_block(t.dtype);
    for (const Range& r : ranges)
      if (r.begin % block || r.end % block ||
          row_bytes(t.dtype, r.begin) + row_bytes(t.dtype, r.end - r.begin) + row_bytes(t.dtype, cols - r.end) != row)
        return make_error("'" + name + "' (" + std::string(dtype_name(t.dtype)) + ") cannot be split at input " +
                          std::to_string(r.begin) + ": tensor parallelism needs its blocks of " + std::to_string(block) +
                          " whole on every rank");
    out.reserve(size_t(rows) * row_bytes(t.dtype, kept));
    for (int64_t i = 0; i < rows; ++i)
      for (const Range& r : ranges) {
        const uint8_t* from = src + size_t(i) * row + row_bytes(t.dtype, r.begin);
        out.insert(out.end(), from, from + row_bytes(t.dtype, r.end - r.begin));
      }
  }
  shape = t.shape;
  shape[size_t(axis)] = kept;
  return out;
}

}  // namespace

VocabularyShard vocabulary_shard(int64_t vocab, TensorParallelRank tp) {
  const int64_t per = (vocab + tp.size - 1) / tp.size;
  return {std::min(vocab, tp.rank * per), std::min(vocab, (tp.rank + 1) * per)};
}

bool splits_vocabulary(Role role) { return role == Role::TokenEmbed || role == Role::Head; }

Status shard_for_tensor_parallel(ModelConfig& config, WeightStore& store, TensorParallelRank tp) {
  if (tp.size <= 1) return ok_status();
  const std::string what = "--tp " + std::to_string(tp.size) + ": ";
  if (tp.rank < 0 || tp.rank >= tp.size) return make_error(what + "rank " + std::to_string(tp.rank) + " is outside the job");
  if (!config.arch->tensor_parallel)
    return make_error(what + "model_type '" + config.model_type + "' does not run tensor-parallel yet");
  if (!config.low_rank.empty()) return make_error(what + "low-rank factored layers do not run tensor-parallel yet");
  if (config.n_heads % tp.size)
    return make_error(what + "the " + std::to_string(config.n_heads) + " attention heads do not divide over " +
                      std::to_string(tp.size) + " ranks");
  if (config.n_kv_heads % tp.size && tp.size % config.n_kv_heads)
    return make_error(what + "the " + std::to_string(config.n_kv_heads) + " kv heads neither divide over " +
                      std::to_string(tp.size) + " ranks nor replicate evenly");
  if (config.intermediate_size % tp.size)
    return make_error(what + "the MLP width " + std::to_string(config.intermediate_size) + " does not divide over " +
                      std::to_string(tp.size) + " ranks");
  const VocabularyShard vocabulary = vocabulary_shard(config.vocab_size, tp);
  if (vocabulary_shard(config.vocab_size, {tp.size - 1, tp.size}).rows() < 1)
    return make_error(what + "the vocabulary of " + std::to_string(config.vocab_size) + " tokens leaves a rank none");

  for (const TensorSpec& spec : config.arch->tensors(config)) {
    const StoredTensor* stored = store.find(spec.name);
    if (!stored) continue;
    const SplitAxis split = spec.split();
    const bool row_bias = (spec.role == Role::AttnO || spec.role == Role::MlpDown) && spec.part == Part::Bias;
    const bool vocabulary_rows = splits_vocabulary(spec.role);
    if (split == SplitAxis::None && !row_bias && !vocabulary_rows) continue;
    // The stored axis of outputs: rows of [out, in], columns of a Conv1D [in, out].
    const int outputs_axis = spec.kind == TensorKind::TransposedMatrix ? 1 : 0;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
    if (vocabulary_rows) {
      BRISK_ASSIGN(sliced, take(stored->tensor, 0, {{vocabulary.begin, vocabulary.end}}, spec.name, shape));
      bytes = std::move(sliced);
    } else if (row_bias) {
      if (tp.rank == 0) continue;
      bytes.assign(stored->tensor.nbytes(), 0);  // zero in every float dtype
      shape = stored->tensor.shape;
    } else {
      const bool columns = split == SplitAxis::Columns;
      const std::vector<Range> ranges =
          columns ? owned_outputs(spec.role, config, tp) : std::vector<Range>{owned_inputs(spec.role, config, tp)};
      BRISK_ASSIGN(sliced, take(stored->tensor, columns ? outputs_axis : 1 - outputs_axis, ranges, spec.name, shape));
      bytes = std::move(sliced);
    }
    auto owner = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
    StoredTensor part = *stored;
    part.tensor.data = owner->data();
    part.tensor.shape = shape;
    store.replace({spec.name}, spec.name, std::move(part), owner);
  }
  const bool replicated_kv = config.n_kv_heads % tp.size != 0;
  config.n_kv_heads = replicated_kv ? 1 : config.n_kv_heads / tp.size;
  config.n_heads /= tp.size;
  config.intermediate_size /= tp.size;
  config.vocab_begin = vocabulary.begin;
  config.vocab_shard = vocabulary.rows();
  return ok_status();
}

}  // namespace brisk
