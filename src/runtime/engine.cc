#include "runtime/engine.h"

#include <chrono>

#include "runtime/device.h"
#include "runtime/stop_matcher.h"
#include "tokenizer/stream_decoder.h"

namespace brisk {

namespace {
double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::Length: return "length";
    case StopReason::Eos: return "eos";
    case StopReason::StopString: return "stop";
    case StopReason::Context: return "context";
  }
  return "?";
}

Engine::Engine(std::unique_ptr<Backend> backend, std::unique_ptr<Model> model,
               std::unique_ptr<Tokenizer> tokenizer, int64_t kv_blocks)
    : backend_(std::move(backend)), model_(std::move(model)), tokenizer_(std::move(tokenizer)),
      cache_(model_->make_cache(kv_blocks * KvCache::kBlockSize)),
      logits_(size_t(model_->config().vocab_size)) {}

Result<std::unique_ptr<Engine>> Engine::open(const EngineOptions& options) {
  BRISK_ASSIGN(backend, make_backend(options.backend));
  BRISK_ASSIGN(model, load_model(options.model_dir, *backend, {options.max_rows, options.context}));
  if (options.context > model->max_context())
    return make_error("--ctx " + std::to_string(options.context) + " exceeds the model's context of " +
                      std::to_string(model->max_context()) + " tokens");
  BRISK_ASSIGN(tokenizer, Tokenizer::load(options.model_dir));
  // The cache holds at least one sequence of the full context, so every request fits alone.
  const ModelConfig& c = model->config();
  const size_t per_block = KvCache::bytes_per_block(c.n_layers, c.n_kv_heads, c.head_dim);
  const int64_t context_blocks = KvCache::blocks_for(model->context());
  if (options.kv_bytes < 0) return make_error("--kv-mem must be positive");
  if (options.kv_bytes > 0 && options.kv_bytes / int64_t(per_block) < context_blocks)
    return make_error("--kv-mem " + std::to_string(options.kv_bytes) + " bytes holds " +
                      std::to_string(options.kv_bytes / int64_t(per_block) * KvCache::kBlockSize) +
                      " tokens, fewer than the context of " + std::to_string(model->context()) +
                      " (" + std::to_string(context_blocks * int64_t(per_block)) +
                      " bytes); raise --kv-mem or lower --ctx");
  const int64_t wanted_blocks = options.kv_bytes > 0 ? options.kv_bytes / int64_t(per_block)
                                                     : KvCache::blocks_for(options.kv_tokens);
  const int64_t kv_blocks = std::max(context_blocks, wanted_blocks);
  return std::unique_ptr<Engine>(
      new Engine(std::move(backend), std::move(model), std::move(tokenizer), kv_blocks));
}

Status Engine::check_token_ids(const std::vector<int32_t>& ids) const {
  const int64_t vocab = model_->config().vocab_size;
  for (int32_t id : ids)
    if (id < 0 || id >= vocab)
      return make_error("the tokenizer produced id " + std::to_string(id) + " beyond the model's vocab_size " +
                        std::to_string(vocab) + " (tokenizer and model do not match)");
  return ok_status();
}

bool Engine::is_eos(int32_t token) const {
  const auto eos = tokenizer_->eos_id();
  const auto& config_eos = model_->config().eos_ids;
  return (eos && token == *eos) ||
         std::find(config_eos.begin(), config_eos.end(), token) != config_eos.end();
}

const float* Engine::prefill(const std::vector<int32_t>& tokens) {
  BRISK_CHECK(!tokens.empty() && int64_t(tokens.size()) <= context(), "prefill: bad length");
  const int64_t n = int64_t(tokens.size()), chunk = model_->max_rows();
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t rows = std::min(chunk, n - start);
    model_->forward(tokens.data() + start, rows, start, cache_,
                    start + rows == n ? LogitRows::Last : LogitRows::None, logits_.data());
  }
  return logits_.data();
}

const float* Engine::decode_step(int32_t token, int64_t pos) {
  model_->forward(&token, 1, pos, cache_, LogitRows::Last, logits_.data());
  return logits_.data();
}

const float* Engine::forward(const std::vector<SequenceChunk>& chunks) {
  size_t rows = 0;
  for (const SequenceChunk& c : chunks)
    rows += c.logits == LogitRows::All ? size_t(c.n_tokens) : c.logits == LogitRows::Last ? 1 : 0;
  const size_t needed = rows * size_t(model_->config().vocab_size);
  if (logits_.size() < needed) logits_.resize(needed);
  model_->forward(chunks, cache_, logits_.data());
  return logits_.data();
}

Result<GenerateResult> Engine::generate(const GenerateRequest& request,
                                        const std::function<void(const std::string&)>& on_text) {
  const std::vector<int32_t> prompt = tokenizer_->encode(request.prompt, AddSpecial::Yes);
  if (prompt.empty()) return make_error("the prompt is empty (and the tokenizer adds no BOS token)");
  if (int64_t(prompt.size()) >= context())
    return make_error("the prompt has " + std::to_string(prompt.size()) +
                      " tokens, which fills the context of " + std::to_string(context()));
  if (request.max_new_tokens < 0) return make_error("the number of new tokens must be >= 0");
  BRISK_TRY(check_token_ids(prompt));

  GenerateResult result;
  result.prompt_tokens = int64_t(prompt.size());
  const int64_t vocab = model_->config().vocab_size;
  std::vector<float> logits(static_cast<size_t>(vocab));
  Sampler sampler(request.sampling, vocab);
  sampler.add_prompt(prompt);
  StreamDecoder decoder(*tokenizer_);
  StopMatcher stopper(request.stop);
  auto emit = [&](const std::string& piece) {
    if (piece.empty()) return;
    result.text += piece;
    if (on_text) on_text(piece);
  };

  double t0 = now_seconds();
  const float* row = prefill(prompt);
  double t1 = now_seconds();
  result.prefill_seconds = t1 - t0;

  int64_t pos = int64_t(prompt.size());
  for (int64_t i = 0; i < request.max_new_tokens; ++i) {
    std::copy(row, row + vocab, logits.begin());
    const int32_t token = sampler.sample(logits.data());
    if (request.stop_at_eos && is_eos(token)) {
      result.reason = StopReason::Eos;
      break;
    }
    result.ids.push_back(token);
    emit(stopper.push(decoder.push(token)));
    if (stopper.stopped()) {
      result.reason = StopReason::StopString;
      break;
    }
    if (i + 1 == request.max_new_tokens) break;
    if (pos >= context()) {
      result.reason = StopReason::Context;
      break;
    }
    row = decode_step(token, pos++);
  }
  if (!stopper.stopped()) emit(stopper.push(decoder.flush()) + stopper.flush());
  result.decode_seconds = now_seconds() - t1;
  return result;
}

}  // namespace brisk
