#!/usr/bin/env bash
# Issue 21's QAT experiment on the CPU: sotu-llama at w4 (g128, symmetric) after quantization-aware
# fine-tuning (`brisk train --qat w4`) against the same fine-tuning without QAT then RTN (so the
# gain of fine-tuning alone is visible), with fp32, RTN and GPTQ of the original model from
# bench/results/calib-ppl-sotu-llama-w4g128.json (same test protocol: sotu-test, ctx 512).
# Writes $OUT/qat-sotu-llama-w4.json.   STEPS=100 BATCH_TOKENS=2048 bench/qat_sotu.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BRISK:-$ROOT/build/tools/brisk/brisk}
SHARED=${SHARED:-$ROOT/../shared}
OUT=${OUT:-/tmp/qat-sotu}
STEPS=${STEPS:-100}
BATCH_TOKENS=${BATCH_TOKENS:-2048}
MODEL=$SHARED/models/sotu-llama
TEST=$SHARED/data/text/sotu-test.txt
mkdir -p "$OUT"
common=(-m "$MODEL" --data "$SHARED/data/text/sotu-train.txt" --steps "$STEPS" --window 256 --batch-tokens "$BATCH_TOKENS"
        --lr 1e-4 --min-lr 1e-5 --warmup 10 --seed 1 --json)
ppl() { "$B" perplexity -m "$1" -f "$TEST" --ctx 512 --json 2>/dev/null; }
[ -s "$OUT/qat.json" ] || "$B" train "${common[@]}" --qat w4 -o "$OUT/qat" >"$OUT/qat.json" 2>"$OUT/qat.err" || { cat "$OUT/qat.err"; exit 1; }
[ -s "$OUT/ft.json" ] || "$B" train "${common[@]}" -o "$OUT/ft" >"$OUT/ft.json" 2>"$OUT/ft.err" || { cat "$OUT/ft.err"; exit 1; }
[ -d "$OUT/ft_rtn" ] || "$B" quantize -m "$OUT/ft" -o "$OUT/ft_rtn" --scheme w4 --json >/dev/null 2>"$OUT/ft_rtn.err"
ppl "$OUT/qat" >"$OUT/qat.ppl.json"
ppl "$OUT/qat/float" >"$OUT/qat_float.ppl.json"
ppl "$OUT/ft" >"$OUT/ft.ppl.json"
ppl "$OUT/ft_rtn" >"$OUT/ft_rtn.ppl.json"
python3 - "$OUT" "$ROOT/bench/results/calib-ppl-sotu-llama-w4g128.json" <<'PY'
import json, os, sys
out, base_file = sys.argv[1], sys.argv[2]
load = lambda n: json.load(open(os.path.join(out, n)))
base = json.load(open(base_file))
gptq = [r["ppl"] for r in base["runs"] if r["symmetry"] == "sym" and r["method"] == "gptq"][0]
doc = {
    "command": "bench/qat_sotu.sh (STEPS=%s BATCH_TOKENS=%s)" % (os.environ.get("STEPS", "100"), os.environ.get("BATCH_TOKENS", "2048")),
    "model": "sotu-llama", "scheme": "w4 g128 symmetric (lm_head w8, brisk quantize's default)",
    "test": "sotu-test, ctx 512 (brisk perplexity)",
    "fp32_ppl": base["fp32_ppl"], "rtn_ppl": base["rtn_ppl"]["sym"], "gptq_ppl": gptq,
    "baselines_from": "bench/results/calib-ppl-sotu-llama-w4g128.json",
    "qat_w4_ppl": load("qat.ppl.json")["ppl"],
    "qat_fp32_master_ppl": load("qat_float.ppl.json")["ppl"],
    "finetuned_fp32_ppl": load("ft.ppl.json")["ppl"],
    "finetuned_then_rtn_w4_ppl": load("ft_rtn.ppl.json")["ppl"],
    "qat_run": load("qat.json"), "finetune_run": load("ft.json"),
}
doc["qat_gap_vs_fp32_percent"] = 100 * (doc["qat_w4_ppl"] / doc["fp32_ppl"] - 1)
doc["gptq_gap_vs_fp32_percent"] = 100 * (gptq / doc["fp32_ppl"] - 1)
json.dump(doc, open(os.path.join(out, "qat-sotu-llama-w4.json"), "w"), indent=1)
print(json.dumps({k: doc[k] for k in ("fp32_ppl", "rtn_ppl", "gptq_ppl", "qat_w4_ppl", "finetuned_fp32_ppl",
                                      "finetuned_then_rtn_w4_ppl", "qat_gap_vs_fp32_percent", "gptq_gap_vs_fp32_percent")}))
PY
