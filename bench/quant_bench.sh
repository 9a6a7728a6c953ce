#!/usr/bin/env bash
# Quantized models on the GPU against bf16 in one run (issue 20): a synthetic llama3-8b (bf16)
# quantized by `brisk quantize` on the machine's CPUs into each of $SCHEMES, then for each scheme
# bs1 decode (16-token prompt, 256 new, 3 runs), batched decode at $BATCHES sequences and (for
# $PREFILL_SCHEMES) a 2048-token prefill, with the device's copy bandwidth, GEMM peak and the
# batched-decode GEMMs of bench/cuda_op_bench measured in the same run. Writes
# $OUT/quant-gpu.json (the shape of bench/results/quant-h100.json) and $OUT/quant-raw.tar.gz.
#   bench/quant_bench.sh                       # everything (more than one 10-minute device call)
#   PARTS="ops models" SCHEMES="bf16 w4" bench/quant_bench.sh
#   PARTS=serve SERVE_SCHEMES="bf16 fp8 w4" bench/quant_bench.sh
# PARTS: ops (cuda_op_bench), models (the schemes), serve (bench/serve_bench.sh for each of
# $SERVE_SCHEMES: 1,000 requests, prompts 128-512, outputs 128-256, all at once, --max-batch
# $SERVE_BATCH, against a few requests one at a time). Quantized folders are kept in /tmp between
# calls on a warm machine; raw logs accumulate in $RAW, so two calls with different SCHEMES give
# one JSON. w4-awq calibrates on $CALIB ($CALIB_TOKENS tokens).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/build-gpu/out}
SCHEMES=${SCHEMES:-bf16 w8 w4 nf4 fp8 w8a8 w4-awq}
PREFILL_SCHEMES=" ${PREFILL_SCHEMES:-bf16 fp8 w8a8 w4} "
BATCHES=${BATCHES:-1,8,16,32,64,128,256}
CALIB=${CALIB:-$ROOT/.carry/text/sotu-train.txt}
CALIB_TOKENS=${CALIB_TOKENS:-4096}
SERVE_SCHEMES=${SERVE_SCHEMES:-bf16 fp8 w4}
SERVE_BATCH=${SERVE_BATCH:-256}
SERVE_REQUESTS=${SERVE_REQUESTS:-1000}
PARTS=" ${PARTS:-ops models} "
want() { [[ "$PARTS" == *" $1 "* ]]; }
R=${RAW:-/tmp/brisk-quant-raw}
mkdir -p "$OUT" "$R"

TARGETS="brisk cuda_op_bench" OUT="$R/build" "$ROOT/scripts/gpu_check.sh" --build-only >"$R/build.txt" 2>&1 ||
  { tail -20 "$R/build.txt"; exit 1; }
[ -d /tmp/brisk-sysroot ] && export LD_LIBRARY_PATH=/tmp/brisk-sysroot/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
B="$ROOT/build-gpu/tools/brisk/brisk"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$R/gpu.txt"

want ops && timeout 300 "$ROOT/build-gpu/bench/cuda_op_bench" --json "$R/ops.json" >"$R/ops.log" 2>&1

L=/tmp/synth-llama3-8b
# The model folder of a scheme (made once: synth, then brisk quantize on the machine's CPUs).
folder_for() {
  local scheme=$1 q=$L-$1 flags
  [ -d $L ] || "$B" synth --shape llama3-8b --dtype bf16 -o $L >/dev/null 2>"$R/synth.err"
  case $scheme in
    bf16) q=$L ;;
    w4-awq) flags=(--scheme w4 --method awq --calib "$CALIB" --calib-tokens "$CALIB_TOKENS") ;;
    *) flags=(--scheme "$scheme") ;;
  esac
  [ -d $q ] || "$B" quantize -m $L -o $q "${flags[@]}" -t 16 --json >"$R/quantize-$scheme.json" 2>"$R/quantize-$scheme.err"
  echo $q
}
if want models; then
  for scheme in $SCHEMES; do
    q=$(folder_for $scheme)
    "$B" bench -m $q --device cuda -p 16 -n 256 -r 3 --batch "$BATCHES" --json >"$R/decode-$scheme.json" \
      2>"$R/decode-$scheme.err"
    [[ "$PREFILL_SCHEMES" == *" $scheme "* ]] &&
      "$B" bench -m $q --device cuda -p 2048 -n 1 -r 5 --json >"$R/prefill-$scheme.json" 2>>"$R/decode-$scheme.err"
  done
fi

if want serve; then
  for scheme in $SERVE_SCHEMES; do
    BRISK="$B" MODEL=$(folder_for $scheme) DEVICE=cuda PROMPT="128 512" OUTPUT="128 256" VOCAB=128000 CTX=1024 \
      CONCURRENCY=256 EXTRA="--kv-mem 40G" BATCH=$SERVE_BATCH REQUESTS=$SERVE_REQUESTS SERIAL_REQUESTS=4 \
      timeout 300 "$ROOT/bench/serve_bench.sh" "$R/serve-$scheme.json" >"$R/serve-$scheme.log" 2>&1
  done
fi

export SERVE_REQUESTS=${SERVE_REQUESTS:-1000} SERVE_BATCH
python3 - "$R" "$OUT/quant-gpu.json" <<'PY'
import json, os, sys, time
raw, out = sys.argv[1], sys.argv[2]
def load(name):
    try:
        return json.load(open(os.path.join(raw, name)))
    except Exception as e:
        return {"error": repr(e)}
ops = load("ops.json")
copy, peak = ops.get("copy_GBps"), ops.get("gemm_peak_TFLOPs")
decode = {f[7:-5]: load(f) for f in sorted(os.listdir(raw)) if f.startswith("decode-") and f.endswith(".json")}
prefill = {f[8:-5]: load(f) for f in sorted(os.listdir(raw)) if f.startswith("prefill-") and f.endswith(".json")}
serve = {f[6:-5]: load(f) for f in sorted(os.listdir(raw)) if f.startswith("serve-") and f.endswith(".json")}
def batched(report):  # serve_bench.sh's continuous-batching result
    return next((r for k, r in report.get("results", {}).items() if k != "max_batch_1"), {})
base = decode.get("bf16", {})
def ratio(a, b):
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None
doc = {
    "machine": open(os.path.join(raw, "gpu.txt")).read().strip(),
    "date": time.strftime("%Y-%m-%d"),
    "command": "bench/quant_bench.sh",
    "model_shape": "llama3-8b (brisk synth --shape llama3-8b --dtype bf16), each scheme by brisk quantize (RTN; "
                   "w4-awq: --method awq), lm_head w8 under the 4-bit schemes (brisk quantize's default)",
    "copy_GBps": copy,
    "gemm_peak_tflops": peak,
    "weight_GB": {s: d.get("weight_bytes", 0) / 1e9 for s, d in decode.items()},
    "bs1_tok_s": {s: d.get("decode_tok_s") for s, d in decode.items()},
    "bs1_tok_s_runs": {s: d.get("decode_tok_s_runs") for s, d in decode.items()},
    "batch_tok_s": {s: d.get("batch_tok_s") for s, d in decode.items()},
    "batch64_tok_s": {s: (d.get("batch_tok_s") or {}).get("64") for s, d in decode.items()},
    # bs1 tok/s over the bytes-per-token roofline: the copy bandwidth over the weight bytes one token reads.
    "roofline_fraction": {s: ratio(d.get("decode_tok_s", 0) * d.get("weight_bytes", 0) / 1e9, copy)
                          for s, d in decode.items()},
    "prefill_2048_tflops": {s: (p.get("prefill_gflops") or float("nan")) / 1e3 for s, p in prefill.items()},
    "batch_note": "N sequences, each its own random 16-token prompt, decode 256 steps together (recorded CUDA "
                  "graphs); generated tokens/s of all N",
    "gemm_batch_rows": [r for r in ops.get("rows", []) if r.get("op", "").endswith("_batch")],
    "serve_out_tok_s": {s: batched(r).get("output_tok_per_s") for s, r in serve.items()},
    "serve_ttft_p99_ms": {s: (batched(r).get("ttft_ms") or {}).get("p99") for s, r in serve.items()},
    "serve_vs_one_at_a_time": {s: (r.get("ratio") or {}).get("output_tok_per_s") for s, r in serve.items()},
    "serve_note": "bench/serve_bench.sh: %s requests all at once (prompts 128-512, outputs 128-256 tokens), "
                  "--max-batch %s, --kv-mem 40G, against 4 requests one at a time"
                  % (os.environ.get("SERVE_REQUESTS", "1000"), os.environ.get("SERVE_BATCH", "256")),
}
doc["bf16_roofline_fraction"] = doc["roofline_fraction"].get("bf16")
doc["vs_bf16"] = {s: {"bs1": ratio(doc["bs1_tok_s"][s], doc["bs1_tok_s"].get("bf16")),
                      **{b: ratio(t, (base.get("batch_tok_s") or {}).get(b)) for b, t in (doc["batch_tok_s"][s] or {}).items()},
                      "prefill_2048": ratio(doc["prefill_2048_tflops"].get(s), doc["prefill_2048_tflops"].get("bf16"))}
                  for s in decode}
doc["prefill_peak_fraction"] = {s: ratio(t, peak) for s, t in doc["prefill_2048_tflops"].items()}
json.dump(doc, open(out, "w"), indent=1)
for s in decode:
    print(f"{s:7s} bs1 {doc['bs1_tok_s'][s]} roof {doc['roofline_fraction'][s]} batch {doc['batch_tok_s'][s]}")
print("vs bf16:", json.dumps(doc["vs_bf16"]))
print("prefill TFLOP/s:", doc["prefill_2048_tflops"], "peak", peak)
print("serve out tok/s:", doc["serve_out_tok_s"], "p99 TTFT ms:", doc["serve_ttft_p99_ms"])
PY
for f in "$R"/*.err; do [ -s "$f" ] && { echo "--- $f"; head -c 400 "$f"; echo; }; done
tar czf "$OUT/quant-raw.tar.gz" -C "$R" --exclude build .
