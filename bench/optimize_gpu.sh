#!/usr/bin/env bash
# Issue 27 on the GPU machine: brisk optimize on a trained tinyllama-shape model and on the
# llama3-8b shape, in parts that fit the device tool's 10-minute calls (a warm machine keeps /tmp
# between calls, so a later part reuses the build and the models):
#   PARTS="tiny-cpu"     train the model (below) and run optimize on the host's CPU cores
#   PARTS="tiny-cuda"    the same model, optimize --device cuda under +1% ppl, objective decode
#   PARTS="test"         tests/optimize_test.py OptimizeCuda (--device cuda against the CPU on
#                        models/sotu-tiny; SHARED, default .carry/text, holds data/text/sotu-valid.txt
#                        and sotu-test.txt: carry it too)
#   PARTS="synth-8b"     brisk synth --shape llama3-8b (random bf16 weights, 16 GB) into /tmp
#   PARTS="llama3-cuda"  optimize --device cuda on it under --budget-bits 5, its scores kept in
#                        /tmp/llama3-scores.json (--scores): a call that stops after scoring (or
#                        timing) leaves them, and the next call's run starts from them. Session 26:
#                        synth 105 s, scoring 184 s, timing 23 s, then 104-126 s per measured 8B
#                        recipe (before writing and loading quantized folders went multi-threaded);
#                        the recipes measured are kept in the scores file too (--budget-bits: rates
#                        do not decide), so each further call resumes after the last one measured;
#                        SCORES_SEED=FILE (carried) starts a fresh machine from a file brought back
# Training: scripts/train_reference_model.py trains tinyllama-1.1b's shape from scratch on
# sotu-train (the Llama-2 SentencePiece vocabulary) on the GPU while brisk builds -- random weights
# score nothing (rank correlation -0.19 in bench/results/optimize-tinyllama-random-xeon-2vcpu.json).
# Needs DATA (default .carry/tiny) with sotu-train.txt, sotu-valid.txt, sotu-test.txt and the
# Llama-2 tokenizer.model; carry .debs and DATA. Records, pages, logs and the summary
# (bench/optimize_summary.py) land under $OUT (at most 8 files come back).
#   PARTS="tiny-cuda synth-8b" bench/optimize_gpu.sh
# Knobs: STEPS (training), SPACE, CALIB_TOKENS, EVAL_TOKENS, VERIFY, OPT_TIMEOUT (per optimize run,
# default 440 s), DEADLINE (seconds from the start by which every run has stopped, default 575: the
# device tool's call limit, with time left to bring the files back).
# SPACE defaults to the RTN formats: GPTQ inverts each input's Hessian on the host, O(cols^3)
# (tinyllama's 22 down_proj read 5632 inputs), too long for one call.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/build-gpu/out}
DATA=${DATA:-$ROOT/.carry/tiny}
TINY=/tmp/tinyllama-sotu
LLAMA3=/tmp/llama3-8b-synth
PARTS=${PARTS:-tiny-cpu}
mkdir -p "$OUT"
export OUT
T0=$(date +%s)
has() { [[ " $PARTS " == *" $1 "* ]]; }
# Build logs stay outside $OUT: the device tool returns at most 8 files.
LOGS=/tmp/brisk-build-logs
mkdir -p "$LOGS"
# brisk only (the CUDA test programs take minutes of a 10-minute call and nothing here runs them).
( TARGETS=brisk OUT="$LOGS" "$ROOT/scripts/gpu_check.sh" --build-only >"$LOGS/gpu_check.txt" 2>&1 &&
  ninja -C "$ROOT/build-gpu" -j15 brisk >"$LOGS/build-brisk.log" 2>&1
  echo $? >"$LOGS/build.rc" ) &
build=$!
if { has tiny-cpu || has tiny-cuda; } && [ ! -f "$TINY/config.json" ]; then
  PYTHONUNBUFFERED=1 LD_LIBRARY_PATH= python3 "$ROOT/scripts/train_reference_model.py" --shape tinyllama-1.1b \
    --tokenizer "$DATA/tokenizer.model" --train "$DATA/sotu-train.txt" --eval "$DATA/sotu-test.txt" \
    --steps "${STEPS:-300}" --out "$TINY" >"$OUT/train.log" 2>&1 || { tail -20 "$OUT/train.log"; }
  tail -1 "$OUT/train.log"
fi
wait $build
echo "build (+ training): $(( $(date +%s) - T0 )) s, build rc $(cat "$LOGS/build.rc" 2>/dev/null)"
[ "$(cat "$LOGS/build.rc" 2>/dev/null)" = 0 ] || { tail -20 "$LOGS/gpu_check.txt"; grep -E "error|FAILED" "$LOGS/build-brisk.log" | head; exit 1; }
[ -d /tmp/brisk-sysroot ] && export LD_LIBRARY_PATH=/tmp/brisk-sysroot/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
B="$ROOT/build-gpu/tools/brisk/brisk"
{ lscpu | sed -n 's/^Model name: *//p'; nproc; nvidia-smi --query-gpu=name --format=csv,noheader; } >"$OUT/machine.txt" 2>&1
HOST="$(head -1 "$OUT/machine.txt"), $(nproc) vCPU"
GPU=$(tail -1 "$OUT/machine.txt")

# optimize NAME MODEL ARGS...: one run, its record and log under $OUT, the last lines of its progress.
optimize() {
  local name=$1 model=$2
  shift 2
  rm -rf "/tmp/$name-optimized"
  local left=$(( ${DEADLINE:-575} - ($(date +%s) - T0) ))
  local limit=${OPT_TIMEOUT:-440}
  (( left < limit )) && limit=$left
  (( limit > 0 )) || { echo "optimize $name: no time left before DEADLINE"; return; }
  timeout "$limit" "$B" optimize -m "$model" -o "/tmp/$name-optimized" --space "${SPACE:-w8,fp8,w4,nf4}" \
    --calib "$DATA/sotu-valid.txt" --eval "$DATA/sotu-test.txt" --calib-tokens "${CALIB_TOKENS:-128}" --window 128 \
    --eval-tokens "${EVAL_TOKENS:-2048}" --eval-ctx 512 --verify "${VERIFY:-1}" "$@" \
    --report "$OUT/optimize-$name.json" 2>"$OUT/optimize-$name.err" | tail -6
  echo "optimize $name exit ${PIPESTATUS[0]} at $(( $(date +%s) - T0 )) s"
  tr '\r' '\n' <"$OUT/optimize-$name.err" | grep -v '^ *$' | awk '{ last[$1 " " $2] = $0 } END { for (k in last) print last[k] }' | tail -8
}
summary() {  # summary NAME COMMAND MACHINE: $OUT/summary-NAME.json
  python3 "$ROOT/bench/optimize_summary.py" "$OUT/summary-$1.json" --command "$2" --machine "$3" \
    $( [ -f "$OUT/train.log" ] && [[ $1 == tiny* ]] && echo --attach training="$OUT/train.log" ) "$1=$OUT/optimize-$1.json"
}
if has tiny-cpu; then
  optimize tiny-cpu "$TINY" --budget-bits 5 --html "$OUT/optimize-tiny-cpu.html"
  summary tiny-cpu "PARTS=tiny-cpu bench/optimize_gpu.sh" "$HOST (the GPU machine's host; CPU backend); model trained on its $GPU"
fi
if has tiny-cuda; then
  optimize tiny-cuda "$TINY" --device cuda --budget-ppl +1% --objective decode --html "$OUT/optimize-tiny-cuda.html"
  summary tiny-cuda "PARTS=tiny-cuda bench/optimize_gpu.sh" "$GPU (--device cuda), host $HOST"
fi
if has test; then
  BRISK_BIN="$B" BRISK_SHARED_DIR="${SHARED:-$ROOT/.carry/text}" timeout 300 python3 "$ROOT/tests/optimize_test.py" -v \
    OptimizeCuda >"$OUT/test-optimize-cuda.log" 2>&1
  echo "OptimizeCuda exit $? at $(( $(date +%s) - T0 )) s"; tail -4 "$OUT/test-optimize-cuda.log"
fi
if has synth-8b && [ ! -f "$LLAMA3/config.json" ]; then
  "$B" synth --shape llama3-8b --dtype bf16 -o "$LLAMA3" >/dev/null && echo "synth llama3-8b at $(( $(date +%s) - T0 )) s"
fi
if has llama3-cuda; then
  # SCORES_SEED: a scores file an earlier call brought back (a fresh machine resumes from it).
  [ -n "${SCORES_SEED:-}" ] && [ ! -f /tmp/llama3-scores.json ] && cp "$SCORES_SEED" /tmp/llama3-scores.json
  SPACE=${SPACE:-w8,w4,nf4} optimize llama3-cuda "$LLAMA3" --device cuda --budget-bits 5 --scores /tmp/llama3-scores.json
  cp /tmp/llama3-scores.json "$OUT/" 2>/dev/null
  [ -s "$OUT/optimize-llama3-cuda.json" ] &&
    summary llama3-cuda "PARTS=llama3-cuda bench/optimize_gpu.sh" "$GPU (--device cuda), host $HOST"
fi
echo "total $(( $(date +%s) - T0 )) s"
