#!/usr/bin/env bash
# brisk's ONNX exports checked by Python's onnx, transformers and onnxruntime on the GPU machine
# (tests/export/onnx_python_check.py). Two steps, because the GPU machine has Python's packages and
# no brisk build:
#   tests/export/onnx_python_check.sh prepare DIR   # here: brisk exports the cases into DIR
#   tests/export/onnx_python_check.sh check DIR OUT.json   # there, with DIR carried
# Result committed: bench/results/onnx-python-<gpu>.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:?prepare DIR | check DIR OUT.json}
dir=${2:?DIR}
golden=tests/fixtures/golden
fixtures=(llama-gqa llama-mqa-bias llama3-rope qwen2 mistral gpt2 bert bert-cls)

if [[ $mode == prepare ]]; then
  brisk=${BRISK_BIN:-build/tools/brisk/brisk}
  shared=${BRISK_SHARED_DIR:-../shared}
  rm -rf "$dir" && mkdir -p "$dir"
  for f in "${fixtures[@]}"; do "$brisk" export -m "$golden/$f" -o "$dir/$f" --format onnx >/dev/null; done
  # A real tokenizer: sotu-qwen2 (fp16 storage keeps the carried folder small; computed in fp32).
  cp -r "$shared/models/sotu-qwen2" "$dir/sotu-qwen2-src"
  "$brisk" export -m "$dir/sotu-qwen2-src" -o "$dir/sotu-qwen2-fp16" --format onnx --dtype fp16 >/dev/null
  "$brisk" export -m "$dir/sotu-qwen2-src" -o "$dir/sotu-qwen2-int4" --format onnx --dtype int4 --group 64 >/dev/null
  # brisk's own w8 model: the int8 (QDQ) graph against the fp32 export of the same codes.
  "$brisk" quantize -m "$golden/qwen2" -o "$dir/qwen2-w8-src" --scheme w8 >/dev/null
  "$brisk" export -m "$dir/qwen2-w8-src" -o "$dir/qwen2-w8" --format onnx >/dev/null
  "$brisk" export -m "$dir/qwen2-w8-src" -o "$dir/qwen2-w8-fp32" --format onnx --dtype fp32 >/dev/null
  du -sh "$dir"
  exit 0
fi

out=${3:?OUT.json}
cases=()
for f in "${fixtures[@]}"; do cases+=(--case "$f:$dir/$f:hf:$golden/$f"); done
cases+=(--case "sotu-qwen2-fp16:$dir/sotu-qwen2-fp16:hf:$dir/sotu-qwen2-src"
        --case "sotu-qwen2-int4-g64:$dir/sotu-qwen2-int4:hf:$dir/sotu-qwen2-src"
        --case "qwen2-w8-int8:$dir/qwen2-w8:onnx:$dir/qwen2-w8-fp32")
python3 tests/export/onnx_python_check.py "${cases[@]}" --out "$out"
