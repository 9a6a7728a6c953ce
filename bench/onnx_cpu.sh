#!/usr/bin/env bash
# Issue 26, ONNX: decode speed of an exported model under onnxruntime (onnxruntime-node from
# tests/export, CPU, $THREADS intra-op threads) against brisk's own CPU decode of the same model, in
# one run on one machine. The model: `brisk synth --shape tinyllama-1.1b --dtype f32` (random
# weights; both runtimes read the same 4.4 GB of fp32 weights per token, and the export exercises
# ONNX external data past 2 GB). Each runtime: a 32-token prompt, then $TOKENS single-token steps
# through the KV cache; tok/s from the median step. Accuracy on real weights is the tests' job
# (tests/export/onnx_export.test.mjs). Writes $OUT/onnx-cpu.json.   bench/onnx_cpu.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BRISK:-$ROOT/build/tools/brisk/brisk}
OUT=${OUT:-/tmp/onnx-cpu}
THREADS=${THREADS:-2}
TOKENS=${TOKENS:-16}
mkdir -p "$OUT"
M="$OUT/tinyllama-f32"
[ -d "$M" ] || "$B" synth --shape tinyllama-1.1b -o "$M" --dtype f32 --seed 1 >/dev/null
rm -rf "$OUT/onnx" && "$B" export -m "$M" -o "$OUT/onnx" --format onnx --json >"$OUT/export.json"
"$B" bench -m "$M" -p 32 -n "$TOKENS" -r 3 -t "$THREADS" --json >"$OUT/brisk-bench.json"
cat >"$OUT/ort_decode.mjs" <<'JS'
import { createRequire } from 'node:module';
import fs from 'node:fs';
const [root, dir, threads, tokens] = process.argv.slice(2);
const ort = createRequire(`${root}/tests/export/package.json`)('onnxruntime-node');
const config = JSON.parse(fs.readFileSync(`${dir}/config.json`));
const t0 = performance.now();
const session = await ort.InferenceSession.create(`${dir}/model.onnx`,
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
node "$OUT/ort_decode.mjs" "$ROOT" "$OUT/onnx" "$THREADS" "$TOKENS" >"$OUT/ort.json"
python3 - "$OUT" "$THREADS" <<'PY'
import json, os, platform, sys
out, threads = sys.argv[1], int(sys.argv[2])
brisk, ort, exp = (json.load(open(os.path.join(out, f))) for f in ("brisk-bench.json", "ort.json", "export.json"))
result = {"machine": f"{platform.machine()}, {os.cpu_count()} vCPU (this session's VM)", "threads": threads,
          "model": "tinyllama-1.1b shape, random fp32 weights (brisk synth)", "onnx_bytes": exp["bytes"],
          "onnx_external_data": exp["external_data"],
          "brisk": {"decode_tok_s": brisk["decode_tok_s"], "prefill_tok_s": brisk["prefill_tok_s"]},
          "onnxruntime": {"decode_tok_s": ort["decode_tok_s"], "prefill_tok_s": ort["prefill_tok_s"], "load_s": ort["load_s"]}}
result["brisk_over_onnxruntime_decode"] = brisk["decode_tok_s"] / ort["decode_tok_s"]
json.dump(result, open(os.path.join(out, "onnx-cpu.json"), "w"), indent=1)
print(json.dumps(result, indent=1))
PY
