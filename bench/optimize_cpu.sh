#!/usr/bin/env bash
# Issue 27: brisk optimize on the CPU -- sotu-llama under a perplexity budget (+1%, objective decode,
# quantization, pruning and low-rank candidates) and a bits budget (5 bits per weight), sotu-qwen2 under the +1% budget,
# sotu-llama under 4.5 bits with 40 steps of recovery distillation (--recover), and sotu-llama with
# low-rank candidates alone under +25% (objective size). Each run measures the
# base model, every single-technique recipe and the frontier points itself (same machine, same run).
# Writes $OUT/optimize-<model>.json (the whole records), the summary
# bench/results/optimize-sotu-llama-<LABEL>.json-style file as $OUT/optimize-summary.json, and the
# HTML page of the sotu-llama ppl run.   bench/optimize_cpu.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BRISK:-$ROOT/build/tools/brisk/brisk}
SHARED=${BRISK_SHARED_DIR:-$ROOT/../shared}
OUT=${OUT:-/tmp/optimize-cpu}
TEXT=$SHARED/data/text
rm -rf "$OUT" && mkdir -p "$OUT"
common=(--calib "$TEXT/sotu-valid.txt" --eval "$TEXT/sotu-test.txt" --calib-tokens 512 --window 256
        --eval-tokens 16384 --eval-ctx 512 --verify 4)
"$B" optimize -m "$SHARED/models/sotu-llama" -o "$OUT/llama-ppl" "${common[@]}" --budget-ppl +1% --objective decode --space quant,prune,lowrank \
  --report "$OUT/optimize-sotu-llama-ppl.json" --html "$OUT/optimize-sotu-llama.html" | tail -3
"$B" optimize -m "$SHARED/models/sotu-llama" -o "$OUT/llama-bits" "${common[@]}" --budget-bits 5 \
  --report "$OUT/optimize-sotu-llama-bits.json" | tail -3
"$B" optimize -m "$SHARED/models/sotu-qwen2" -o "$OUT/qwen2-ppl" "${common[@]}" --budget-ppl +1% --objective decode \
  --report "$OUT/optimize-sotu-qwen2-ppl.json" | tail -3
"$B" optimize -m "$SHARED/models/sotu-llama" -o "$OUT/llama-recover" "${common[@]}" --budget-bits 4.5 --space w8,w4,nf4 \
  --recover 40 --report "$OUT/optimize-sotu-llama-recover.json" | tail -4
"$B" optimize -m "$SHARED/models/sotu-llama" -o "$OUT/llama-lowrank" "${common[@]}" --budget-ppl +25% --objective size \
  --space lowrank --report "$OUT/optimize-sotu-llama-lowrank.json" | tail -3
"$ROOT/bench/optimize_summary.py" "$OUT/optimize-summary.json" --command bench/optimize_cpu.sh \
  sotu-llama-ppl="$OUT/optimize-sotu-llama-ppl.json" sotu-llama-bits="$OUT/optimize-sotu-llama-bits.json" \
  sotu-qwen2-ppl="$OUT/optimize-sotu-qwen2-ppl.json" sotu-llama-recover="$OUT/optimize-sotu-llama-recover.json" \
  sotu-llama-lowrank="$OUT/optimize-sotu-llama-lowrank.json"
