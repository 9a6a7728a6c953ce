// brisk export: a model brisk loads written in another runtime's format -- GGUF for llama.cpp
// (library: src/export/gguf_export.h).
#include <algorithm>
#include <chrono>
#include <memory>

#include "common.h"
#include "export/gguf_export.h"
#include "export/onnx_export.h"
#include "serve/chat_template.h"

namespace brisk::cli {

namespace {

struct ExportFlags {
  std::string in, out, format = "gguf", dtype = "auto";
  int64_t group = 0;
  bool json = false;
};

int export_onnx_folder(const ExportFlags& f, std::chrono::steady_clock::time_point start) {
  OnnxExportOptions options;
  auto type = parse_onnx_matrix_type(f.dtype);
  if (!type) return fail(type.error());
  options.matrix_type = type.value();
  if (f.group != 0) {
    if (std::find(std::begin(kOnnxInt4Groups), std::end(kOnnxInt4Groups), f.group) == std::end(kOnnxInt4Groups))
      return fail("--group " + std::to_string(f.group) + ": onnxruntime's MatMulNBits takes 32, 64 or 128 here");
    if (options.matrix_type != OnnxMatrixType::Int4) return fail("--group applies to --format onnx --dtype int4 only");
    options.int4_group = f.group;
  }
  auto report = export_onnx(f.in, f.out, options);
  if (!report) return fail(report.error());
  const OnnxExportReport& r = report.value();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (f.json) {
    print_json({{"out", f.out}, {"format", "onnx"}, {"file", r.file}, {"model_type", r.model_type}, {"dtype", f.dtype},
                {"matrices_by_type", r.matrices_by_type}, {"layers", r.layers}, {"parameters", r.parameters},
                {"external_data", r.external_data}, {"bytes", r.bytes}, {"seconds", seconds}});
    return 0;
  }
  std::string forms;
  for (const auto& [form, n] : r.matrices_by_type) forms += (forms.empty() ? "" : ", ") + std::to_string(n) + " " + form;
  std::printf("wrote %s/%s%s: %s, %lld layers, %.2fM parameters (matrices: %s), %.1f MB, in %.1f s\n",
              f.out.c_str(), r.file.c_str(), r.external_data ? " (+ _data)" : "", r.model_type.c_str(), (long long)r.layers,
              double(r.parameters) / 1e6, forms.c_str(), double(r.bytes) / 1e6, seconds);
  return 0;
}

}  // namespace

Command add_export(CLI::App& app) {
  using Flags = ExportFlags;
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand(
      "export",
      "Write a model (a Hugging Face folder -- quantized or pruned ones included -- or a .gguf) in\n"
      "another runtime's format. gguf: a llama.cpp file with its tensor names and layouts, the\n"
      "architecture's metadata, the tokenizer (tokenizer.ggml.*) and the chat template; matrices take\n"
      "--dtype, norms and biases stay f32 (llama, qwen2, mistral and gpt2 models). onnx: a folder with\n"
      "onnx/model*.onnx (Optimum's decoder layout: input_ids, attention_mask, position_ids,\n"
      "past_key_values.N.key/value in, logits and present.N.key/value out) beside config.json and the\n"
      "tokenizer files, for onnxruntime, Optimum and transformers.js (llama, qwen2, mistral and gpt2\n"
      "decoders; BERT encoders and classifiers: input_ids, attention_mask, token_type_ids in,\n"
      "last_hidden_state or logits out); matrices as fp32, fp16, int8 (QDQ) or int4 (onnxruntime's\n"
      "MatMulNBits)");
  add_model_option(sub, f->in, "model folder or .gguf file");
  sub->add_option("-o,--out", f->out, "Output: a .gguf file (must not exist), or for onnx a folder (must not exist or\n"
                                      "be empty)")->required();
  sub->add_option("--format", f->format, "gguf, or onnx (onnx/model*.onnx + config and tokenizer files)")
      ->capture_default_str();
  sub->add_option("--dtype", f->dtype,
                  "Matrix type: " + gguf_export_type_names() +
                      ", or auto (each matrix the nearest to what it is stored as: bf16 stays bf16, brisk's\n"
                      "w8/w8a8/fp8 become q8_0, w4/nf4/log2 q4_k). Rows that do not hold whole blocks fall back: q4_k to q4_0, q6_k to q8_0,\n"
                      "then f16.\n"
                      "onnx: auto (brisk w8/w8a8 -> int8, w4 -> int4 with their own codes, the rest fp32), fp32,\n"
                      "fp16 (stored fp16, computed fp32), int8 (per-channel, QDQ), int4 (MatMulNBits; float\n"
                      "matrices are quantized by RTN, symmetric, --group inputs per scale)")
      ->capture_default_str();
  sub->add_option("--group", f->group, "onnx --dtype int4 of a float model: inputs per scale, 32, 64 or 128 (default 128)");
  sub->add_flag("--json", f->json,
                "Print {\"out\", \"format\", \"architecture\", \"tokenizer\", \"pre_tokenizer\", \"source\",\n"
                "\"dtype\", \"tensors_by_type\", \"fallbacks\", \"parameters\", \"bytes\", \"seconds\"}");
  return {sub, [f]() {
    const auto start = std::chrono::steady_clock::now();
    if (f->format == "onnx") return export_onnx_folder(*f, start);
    if (f->format != "gguf")
      return fail("unknown --format '" + f->format + "' (brisk export writes: gguf, onnx)");
    if (f->group != 0) return fail("--group applies to --format onnx --dtype int4 only");
    GgufExportOptions options;
    if (f->dtype != "auto") {
      auto type = parse_gguf_export_type(f->dtype);
      if (!type) return fail(make_error("--dtype: " + type.error().message));
      options.matrix_type = type.value();
    }
    // The folder's chat template travels as tokenizer.chat_template; a model without one has none.
    if (auto chat = ChatTemplate::from_tokenizer_config(f->in); chat.ok())
      options.chat_template = chat->source();
    else if (chat.error().message.find("has no chat_template") == std::string::npos &&
             chat.error().message.find("has no tokenizer.chat_template") == std::string::npos)
      std::fprintf(stderr, "note: the chat template is not exported: %s\n", chat.error().message.c_str());
    ProgressBar bar("export gguf");
    auto report = export_gguf(f->in, f->out, options, [&](int64_t done, int64_t total) {
      bar.update(double(done), double(total), std::to_string(done) + "/" + std::to_string(total) + " tensors");
    });
    bar.finish();
    if (!report) return fail(report.error());
    const GgufExportReport& r = report.value();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (f->json) {
      print_json({{"out", f->out}, {"format", "gguf"}, {"architecture", r.architecture}, {"tokenizer", r.tokenizer},
                  {"pre_tokenizer", r.pre_tokenizer}, {"source", r.source_format}, {"dtype", r.matrix_type},
                  {"tensors_by_type", r.tensors_by_type}, {"fallbacks", r.fallbacks}, {"parameters", r.parameters},
                  {"bytes", r.bytes}, {"seconds", seconds}});
      return 0;
    }
    for (const auto& [type, names] : r.fallbacks)
      std::fprintf(stderr, "note: %zu matrices stored as %s, their rows not whole blocks of the type asked for (first: %s)\n",
                   names.size(), type.c_str(), names.front().c_str());
    if (r.tokenizer.empty())
      std::fprintf(stderr, "note: %s has no tokenizer: the file has no vocabulary (llama.cpp needs one to run it)\n",
                   f->in.c_str());
    std::printf("wrote %s: %s, %.2fM parameters as %s (source: %s), %.1f MB, in %.1f s\n", f->out.c_str(),
                r.architecture.c_str(), double(r.parameters) / 1e6, r.matrix_type.c_str(), r.source_format.c_str(),
                double(r.bytes) / 1e6, seconds);
    return 0;
  }};
}

}  // namespace brisk::cli
