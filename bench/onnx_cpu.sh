#!/usr/bin/env bash
# Issue 26, ONNX: decode speed of an exported model under onnxruntime (onnxruntime-node from
# tests/export, CPU, $THREADS intra-op threads, default optimization level) against brisk's own CPU
# decode of the same model, in one run on one machine. The model: `brisk synth --shape
# tinyllama-1.1b --dtype f32` (random weights; the fp32 export exercises ONNX external data past
# 2 GB), and for each of $FORMS: fp32 as is, w8 / w4 = `brisk quantize --scheme w8|w4` of it,
# exported with their codes (int8 QDQ, int4 MatMulNBits). Each runtime: a 32-token prompt, then
# $TOKENS single-token steps through the KV cache; tok/s from the median step (brisk: the median of
# 3 bench runs). Accuracy is the tests' job (tests/export). Writes $OUT/onnx-cpu.json.
#   bench/onnx_cpu.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BRISK:-$ROOT/build/tools/brisk/brisk}
OUT=${OUT:-/tmp/onnx-cpu}
THREADS=${THREADS:-2}
TOKENS=${TOKENS:-16}
FORMS=${FORMS:-fp32 w8 w4}
mkdir -p "$OUT"
M="$OUT/tinyllama-f32"
[ -d "$M" ] || "$B" synth --shape tinyllama-1.1b -o "$M" --dtype f32 --seed 1 >/dev/null
cat >"$OUT/ort_decode.mjs" <<'JS'
import { createRequire } from 'node:module';
import fs from 'node:fs';
const [root, dir, file, threads, tokens] = process.argv.slice(2);
const ort = createRequire(`${root}/tests/export/package.json`)('onnxruntime-node');
const config = JSON.parse(fs.readFileSync(`${dir}/config.json`));
const t0 = performance.now();
const session = await ort.InferenceSession.create(`${dir}/${file}`,
  { intraOpNumThreads: Number(threads), interOpNumThreads: 1, graphOptimizationLevel: 'all' });
const load_s = (performance.now() - t0) / 1000;
const L = config.num_hidden_layers, KV = config.num_key_value_heads, D = config.hidden_size / config.num_attention_heads;
const feeds = (ids, start, past) => {
  const f = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(start + ids.length).fill(1n), [1, start + ids.length]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from(ids, (_, i) => BigInt(start + i)), [1, ids.length]),
  };
  for (let l = 0; l < L; ++l) for (const kv of ['key', 'value'])
    f[`past_key_values.${l}.${kv}`] = past ? past[`present.${l}.${kv}`] : new ort.Tensor('float32', new Float32Array(0), [1, KV, 0, D]);
  return f;
};
const prompt = Array.from({ length: 32 }, (_, i) => (i * 37) % config.vocab_size);
let t = performance.now();
let out = await session.run(feeds(prompt, 0, null));
const prefill_tok_s = 32 / ((performance.now() - t) / 1000);
const steps = [];
for (let i = 0; i < Number(tokens); ++i) {
  t = performance.now();
  out = await session.run(feeds([(i * 11) % config.vocab_size], 32 + i, out));
  steps.push((performance.now() - t) / 1000);
}
steps.sort((a, b) => a - b);
console.log(JSON.stringify({ load_s, prefill_tok_s, decode_tok_s: 1 / steps[Math.floor(steps.length / 2)], steps: steps.length }));
JS
for form in $FORMS; do
  model=$M
  if [ "$form" != fp32 ]; then
    model="$OUT/tinyllama-$form"
    [ -d "$model" ] || "$B" quantize -m "$M" -o "$model" --scheme "$form" >/dev/null
  fi
  rm -rf "$OUT/onnx-$form" && "$B" export -m "$model" -o "$OUT/onnx-$form" --format onnx --json >"$OUT/export-$form.json"
  "$B" bench -m "$model" -p 32 -n "$TOKENS" -r 3 -t "$THREADS" --json >"$OUT/brisk-$form.json"
  file=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["file"])' "$OUT/export-$form.json")
  node "$OUT/ort_decode.mjs" "$ROOT" "$OUT/onnx-$form" "$file" "$THREADS" "$TOKENS" >"$OUT/ort-$form.json"
  rm -rf "$OUT/onnx-$form"
done
python3 - "$OUT" "$THREADS" $FORMS <<'PY'
import json, os, platform, sys
out, threads, forms = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
load = lambda f: json.load(open(os.path.join(out, f)))
result = {"machine": f"{platform.machine()}, {os.cpu_count()} vCPU (this session's VM)", "threads": threads,
          "model": "tinyllama-1.1b shape, random fp32 weights (brisk synth); w8 / w4: brisk quantize of it",
          "command": "bench/onnx_cpu.sh", "forms": {}}
for form in forms:
    exp, brisk, ort = load(f"export-{form}.json"), load(f"brisk-{form}.json"), load(f"ort-{form}.json")
    result["forms"][form] = {
        "onnx_file": exp["file"], "onnx_bytes": exp["bytes"], "onnx_external_data": exp["external_data"],
        "matrices_by_type": exp["matrices_by_type"],
        "brisk": {"decode_tok_s": brisk["decode_tok_s"], "prefill_tok_s": brisk["prefill_tok_s"],
                  "decode_tok_s_runs": brisk.get("decode_tok_s_runs")},
        "onnxruntime": {"decode_tok_s": ort["decode_tok_s"], "prefill_tok_s": ort["prefill_tok_s"], "load_s": ort["load_s"]},
        "brisk_over_onnxruntime_decode": brisk["decode_tok_s"] / ort["decode_tok_s"]}
result["note"] = ("brisk: median of 3 bench runs; onnxruntime: median of the single-token steps after a 32-token "
                  "prompt; per form brisk then onnxruntime, not alternated")
json.dump(result, open(os.path.join(out, "onnx-cpu.json"), "w"), indent=1)
print(json.dumps(result, indent=1))
PY
