#!/usr/bin/env bash
# Issue 27 on a trained tinyllama-shape model, in one call on the GPU machine (its GPU trains, its
# CPU cores run brisk optimize on the CPU backend, as on any CPU host):
#   1. build brisk (scripts/gpu_check.sh --build-only, then the brisk target) while
#   2. scripts/train_reference_model.py trains tinyllama-1.1b's shape from scratch on sotu-train
#      (the Llama-2 SentencePiece vocabulary) -- random weights score nothing (rank correlation
#      -0.19 in bench/results/optimize-tinyllama-random-xeon-2vcpu.json);
#   3. brisk optimize on it (BUDGET, default --budget-bits 5: no timing rounds, which a decode
#      objective adds and one 10-minute call cannot hold), with the page and the record.
# Needs DATA (default .carry/tiny) with sotu-train.txt, sotu-valid.txt, sotu-test.txt and the
# Llama-2 tokenizer.model; carry .debs and DATA. Everything lands under $OUT.
#   bench/optimize_tinyllama_gpu.sh        (knobs: STEPS, SPACE, BUDGET, CALIB_TOKENS, EVAL_TOKENS, VERIFY)
# SPACE defaults to the RTN formats: GPTQ inverts each input's Hessian on one thread, O(cols^3)
# (tinyllama's 22 down_proj read 5632 inputs), too long for one 10-minute call.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/build-gpu/out}
DATA=${DATA:-$ROOT/.carry/tiny}
MODEL=${MODEL:-/tmp/tinyllama-sotu}
mkdir -p "$OUT"
export OUT
T0=$(date +%s)
# Build logs stay outside $OUT: the device tool returns at most 8 files, and the record, the page,
# the training log and optimize's log must be among them (session 23's first run lost them).
LOGS=/tmp/brisk-build-logs
mkdir -p "$LOGS"
( OUT="$LOGS" "$ROOT/scripts/gpu_check.sh" --build-only >"$LOGS/gpu_check.txt" 2>&1 &&
  ninja -C "$ROOT/build-gpu" -j15 brisk >"$LOGS/build-brisk.log" 2>&1
  echo $? >"$LOGS/build.rc" ) &
build=$!
if [ ! -f "$MODEL/config.json" ]; then
  PYTHONUNBUFFERED=1 LD_LIBRARY_PATH= python3 "$ROOT/scripts/train_reference_model.py" --shape tinyllama-1.1b \
    --tokenizer "$DATA/tokenizer.model" --train "$DATA/sotu-train.txt" --eval "$DATA/sotu-test.txt" \
    --steps "${STEPS:-500}" --out "$MODEL" >"$OUT/train.log" 2>&1 || { tail -20 "$OUT/train.log"; }
fi
tail -1 "$OUT/train.log"
wait $build
echo "build + train: $(( $(date +%s) - T0 )) s, build rc $(cat "$LOGS/build.rc" 2>/dev/null)"
[ "$(cat "$LOGS/build.rc" 2>/dev/null)" = 0 ] || { tail -20 "$LOGS/gpu_check.txt"; grep -E "error|FAILED" "$LOGS/build-brisk.log" | head; exit 1; }
[ -d /tmp/brisk-sysroot ] && export LD_LIBRARY_PATH=/tmp/brisk-sysroot/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
B="$ROOT/build-gpu/tools/brisk/brisk"
rm -rf /tmp/tinyllama-optimized
timeout "${OPT_TIMEOUT:-440}" "$B" optimize -m "$MODEL" -o /tmp/tinyllama-optimized --space "${SPACE:-w8,fp8,w4,nf4}" \
  --calib "$DATA/sotu-valid.txt" --eval "$DATA/sotu-test.txt" --calib-tokens "${CALIB_TOKENS:-128}" --window 128 \
  --eval-tokens "${EVAL_TOKENS:-4096}" --eval-ctx 512 --verify "${VERIFY:-2}" ${BUDGET:---budget-bits 5} \
  --report "$OUT/optimize-tinyllama-sotu.json" --html "$OUT/optimize-tinyllama-sotu.html" 2>"$OUT/optimize.err" |
  tail -6
echo "optimize exit ${PIPESTATUS[0]} at $(( $(date +%s) - T0 )) s"
tr '\r' '\n' <"$OUT/optimize.err" | grep -v '^ *$' | awk '{ last[$1 " " $2] = $0 } END { for (k in last) print last[k] }' | tail -12
{ lscpu | sed -n 's/^Model name: *//p'; nproc; nvidia-smi --query-gpu=name --format=csv,noheader; } >"$OUT/machine.txt" 2>&1
python3 "$ROOT/bench/optimize_summary.py" "$OUT/optimize-summary.json" --command "bench/optimize_tinyllama_gpu.sh" \
  --machine "$(head -1 "$OUT/machine.txt") (the GPU machine's host), $(nproc) vCPU; model trained on its $(tail -1 "$OUT/machine.txt")" \
  --attach training="$OUT/train.log" tinyllama-sotu="$OUT/optimize-tinyllama-sotu.json"
