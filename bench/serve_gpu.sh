#!/usr/bin/env bash
# brisk serve on the GPU machine in one device call: build (scripts/gpu_check.sh --build-only, then
# the brisk target), a synthetic llama3-8b (bf16), bench/serve_bench.sh at full load (continuous
# batching against one request at a time, same plan) and at half the measured maximum rate (p99
# TTFT), and the chat-template fixtures rendered by transformers. Everything lands under $OUT.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/build-gpu/out}
mkdir -p "$OUT"
export OUT
"$ROOT/scripts/gpu_check.sh" --build-only >"$OUT/gpu_check.txt" 2>&1 || { tail -20 "$OUT/gpu_check.txt"; exit 1; }
ninja -C "$ROOT/build-gpu" -j16 brisk >"$OUT/build-brisk.log" 2>&1 ||
  { grep -E "error|FAILED" "$OUT/build-brisk.log" | head -20; exit 1; }
LD_LIBRARY_PATH= timeout 60 python3 "$ROOT/scripts/golden/make_chat_fixtures.py" --engine transformers \
  --out "$OUT/chat-expected.json" >"$OUT/chat.log" 2>&1
[ -d /tmp/brisk-sysroot ] && export LD_LIBRARY_PATH=/tmp/brisk-sysroot/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
B="$ROOT/build-gpu/tools/brisk/brisk"
M=/tmp/synth-llama3-8b
[ -d $M ] || "$B" synth --shape llama3-8b --dtype bf16 -o $M >/dev/null 2>"$OUT/synth.err"
cd "$ROOT"
common=(BRISK="$B" MODEL=$M DEVICE=cuda PROMPT="128 512" OUTPUT="128 256" VOCAB=128000 CTX=1024
        CONCURRENCY=256 EXTRA="--kv-mem 40G")
env "${common[@]}" REQUESTS=${REQUESTS:-1000} SERIAL_REQUESTS=${SERIAL_REQUESTS:-16} \
  timeout ${FULL_TIMEOUT:-300} bench/serve_bench.sh "$OUT/serve-h100-llama3-8b.json" 2>"$OUT/serve.log"
rate=$(python3 -c "import json; print(json.load(open('$OUT/serve-h100-llama3-8b.json'))['results']['max_batch_64']['req_per_s'] / 2)")
env "${common[@]}" RATE="$rate" REQUESTS=${HALF_REQUESTS:-300} SERIAL_REQUESTS=1 \
  timeout ${HALF_TIMEOUT:-150} bench/serve_bench.sh "$OUT/serve-h100-llama3-8b-half-rate.json" 2>"$OUT/serve-half.log"
echo "half rate: $rate req/s"
