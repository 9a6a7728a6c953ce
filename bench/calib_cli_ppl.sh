#!/bin/bash
# GPTQ and AWQ w4 g128 through the CLI, as a user runs them: `brisk quantize --method ...` on
# sotu-llama with N calibration tokens of sotu-train, then `brisk perplexity --ctx 512` on the
# whole sotu-test. One line per run: "SYMMETRY METHOD N ppl quantize_s ppl_s".
# Reproduces the CLI table of docs/RESULTS.md ("Calibrated 4-bit").
#
#   bench/calib_cli_ppl.sh [BRISK] [SHARED] [configs...]   configs like "asym gptq 16384"
set -euo pipefail
BRISK=${1:-build/tools/brisk/brisk}
SHARED=${2:-../shared}
shift $(( $# < 2 ? $# : 2 ))
CONFIGS=("$@")
if [ ${#CONFIGS[@]} -eq 0 ]; then
  for symmetry in asym sym; do
    for n in 4096 16384 65536; do
      CONFIGS+=("$symmetry gptq $n" "$symmetry awq $n")
    done
  done
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for config in "${CONFIGS[@]}"; do
  read -r symmetry method n <<<"$config"
  out="$WORK/model"
  rm -rf "$out"
  t0=$(date +%s)
  "$BRISK" quantize -m "$SHARED/models/sotu-llama" -o "$out" --scheme w4 "--$symmetry" --method "$method" \
    --calib "$SHARED/data/text/sotu-train.txt" --calib-tokens "$n" > "$WORK/quantize.log" 2>&1
  t1=$(date +%s)
  ppl=$("$BRISK" perplexity -m "$out" -f "$SHARED/data/text/sotu-test.txt" --ctx 512 --json |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["ppl"])')
  t2=$(date +%s)
  echo "$symmetry $method $n $ppl $((t1 - t0)) $((t2 - t1))"
done
