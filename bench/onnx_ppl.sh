#!/usr/bin/env bash
# Issue 26, ONNX: file size and perplexity of sotu-llama exported as fp32, fp16, int8 and int4,
# computed by onnxruntime (onnxruntime-node from tests/export, CPU, default session options) and
# by brisk on the model each export came from, with one protocol: `brisk perplexity`'s (the file
# tokenized whole, consecutive windows of $CTX tokens, the last partial one dropped, positions
# 0..ctx-2 predicting 1..ctx-1). int8 and int4 are brisk's own w8 and w4 (RTN, g128) models,
# exported with their codes. Writes $OUT/onnx-ppl.json.   bench/onnx_ppl.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BRISK:-$ROOT/build/tools/brisk/brisk}
SHARED=${BRISK_SHARED_DIR:-$ROOT/../shared}
OUT=${OUT:-/tmp/onnx-ppl}
CTX=${CTX:-512}
THREADS=${THREADS:-2}
TEXT=$SHARED/data/text/sotu-test.txt
SRC=$SHARED/models/sotu-llama
rm -rf "$OUT" && mkdir -p "$OUT"
"$B" tokenize -m "$SRC" -f "$TEXT" --json >"$OUT/ids.json"
"$B" quantize -m "$SRC" -o "$OUT/w8" --scheme w8 >/dev/null
"$B" quantize -m "$SRC" -o "$OUT/w4" --scheme w4 >/dev/null
cat >"$OUT/ort_ppl.mjs" <<'JS'
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
const [root, dir, file, idsFile, ctx, threads] = process.argv.slice(2);
const ort = createRequire(`${root}/tests/export/package.json`)('onnxruntime-node');
const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json')));
const session = await ort.InferenceSession.create(path.join(dir, file), { intraOpNumThreads: Number(threads) });
const ids = JSON.parse(fs.readFileSync(idsFile)).ids;
const L = config.num_hidden_layers, KV = config.num_key_value_heads, D = config.hidden_size / config.num_attention_heads;
const n = Number(ctx), V = config.vocab_size;
let nll = 0, scored = 0;
const t0 = performance.now();
for (let w = 0; (w + 1) * n <= ids.length; ++w) {
  const window = ids.slice(w * n, (w + 1) * n);
  const feeds = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(window, BigInt), [1, n]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from(window, (_, i) => BigInt(i)), [1, n]),
  };
  for (let l = 0; l < L; ++l) for (const kv of ['key', 'value'])
    feeds[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [1, KV, 0, D]);
  const logits = (await session.run(feeds)).logits.data;
  for (let i = 0; i + 1 < n; ++i) {
    const row = logits.subarray(i * V, (i + 1) * V);
    let max = -Infinity;
    for (let v = 0; v < V; ++v) max = Math.max(max, row[v]);
    let sum = 0;
    for (let v = 0; v < V; ++v) sum += Math.exp(row[v] - max);
    nll += Math.log(sum) + max - row[window[i + 1]];
    ++scored;
  }
}
console.log(JSON.stringify({ ppl: Math.exp(nll / scored), scored, nll_sum: nll, seconds: (performance.now() - t0) / 1000 }));
JS
rows=()
for form in fp32 fp16 int8 int4; do
  case $form in
    fp32|fp16) model=$SRC; flags=(--dtype "$form") ;;
    int8) model=$OUT/w8; flags=() ;;
    int4) model=$OUT/w4; flags=() ;;
  esac
  "$B" export -m "$model" -o "$OUT/$form" --format onnx --json "${flags[@]}" >"$OUT/$form-export.json"
  file=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["file"])' "$OUT/$form-export.json")
  "$B" perplexity -m "$model" -f "$TEXT" --ctx "$CTX" -t "$THREADS" --json 2>/dev/null >"$OUT/$form-brisk.json"
  node "$OUT/ort_ppl.mjs" "$ROOT" "$OUT/$form" "$file" "$OUT/ids.json" "$CTX" "$THREADS" >"$OUT/$form-ort.json"
  rows+=("$form")
done
python3 - "$OUT" "$CTX" "$THREADS" "$SRC" "${rows[@]}" <<'PY'
import json, os, platform, sys
out, ctx, threads, src, forms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:]
load = lambda f: json.load(open(os.path.join(out, f)))
source_bytes = sum(os.path.getsize(os.path.join(src, f)) for f in os.listdir(src) if f.endswith(".safetensors"))
result = {"machine": f"{platform.machine()}, {os.cpu_count()} vCPU (this session's VM)", "threads": threads,
          "model": "sotu-llama (bf16, 15.7M parameters)", "source_safetensors_bytes": source_bytes,
          "text": "sotu-test.txt", "ctx": ctx, "command": "bench/onnx_ppl.sh", "forms": {}}
for form in forms:
    e, b, o = load(f"{form}-export.json"), load(f"{form}-brisk.json"), load(f"{form}-ort.json")
    assert b["scored"] == o["scored"], (form, b["scored"], o["scored"])
    result["forms"][form] = {"file": e["file"], "bytes": e["bytes"], "matrices_by_type": e["matrices_by_type"],
                             "brisk_model": "sotu-llama" if form in ("fp32", "fp16") else f"brisk quantize --scheme w{form[3:]}",
                             "ppl_brisk": b["ppl"], "ppl_onnxruntime": o["ppl"],
                             "ppl_rel_diff": o["ppl"] / b["ppl"] - 1, "scored": o["scored"],
                             "seconds_brisk": b["seconds"], "seconds_onnxruntime": o["seconds"]}
json.dump(result, open(os.path.join(out, "onnx-ppl.json"), "w"), indent=1)
print(json.dumps(result, indent=1))
PY
