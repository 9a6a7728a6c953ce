#!/usr/bin/env bash
# Issue 27: brisk optimize on the CPU -- sotu-llama under a perplexity budget (+1%, objective decode,
# quantization and pruning candidates) and a bits budget (5 bits per weight), sotu-qwen2 under the +1% budget,
# and sotu-llama under 4.5 bits with 40 steps of recovery distillation (--recover). Each run measures the
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
"$B" optimize -m "$SHARED/models/sotu-llama" -o "$OUT/llama-ppl" "${common[@]}" --budget-ppl +1% --objective decode --space quant,prune \
  --report "$OUT/optimize-sotu-llama-ppl.json" --html "$OUT/optimize-sotu-llama.html" | tail -3
"$B" optimize -m "$SHARED/models/sotu-llama" -o "$OUT/llama-bits" "${common[@]}" --budget-bits 5 \
  --report "$OUT/optimize-sotu-llama-bits.json" | tail -3
"$B" optimize -m "$SHARED/models/sotu-qwen2" -o "$OUT/qwen2-ppl" "${common[@]}" --budget-ppl +1% --objective decode \
  --report "$OUT/optimize-sotu-qwen2-ppl.json" | tail -3
"$B" optimize -m "$SHARED/models/sotu-llama" -o "$OUT/llama-recover" "${common[@]}" --budget-bits 4.5 --space w8,w4,nf4 \
  --recover 40 --report "$OUT/optimize-sotu-llama-recover.json" | tail -4
python3 - "$OUT" <<'PY'
import json, os, platform, subprocess, sys
out = sys.argv[1]
cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
summary = {"machine": f"{cpu}, {os.cpu_count()} vCPU", "command": "bench/optimize_cpu.sh", "runs": {}}
for run in ("sotu-llama-ppl", "sotu-llama-bits", "sotu-qwen2-ppl", "sotu-llama-recover"):
    r = json.load(open(os.path.join(out, f"optimize-{run}.json")))
    c = r["chosen"]
    summary["runs"][run] = {
        "budget": r["budget"], "objective": r["objective"], "groups": len(r["groups"]), "frontier_points": len(r["frontier"]),
        "base": r["base"], "chosen": {"source": c["source"], "recipe": c["recipe"], "predicted_ppl": c["predicted_ppl"],
                                      "measured": c["measured"]},
        "single_technique": {s["name"]: {"predicted_ppl": s["predicted_ppl"], "measured": s["measured"]}
                             for s in r["single_technique"]},
        "verified_frontier": [{"index": i, "predicted_ppl": p["predicted_ppl"], "measured": p["measured"]}
                              for i, p in enumerate(r["frontier"]) if "measured" in p],
        "rank_correlation": r["rank_correlation"], "seconds": r["seconds"],
        "speedup_vs_base": c["measured"]["decode_tok_s"] / r["base"]["decode_tok_s"],
        "size_vs_base": c["measured"]["bytes"] / r["base"]["bytes"]}
    if r.get("recovery"):
        summary["runs"][run]["recovery"] = r["recovery"]
        summary["runs"][run]["chosen"]["measured_before_recovery"] = c.get("measured_before_recovery")
summary["speedup_vs_base"] = summary["runs"]["sotu-llama-ppl"]["speedup_vs_base"]
json.dump(summary, open(os.path.join(out, "optimize-summary.json"), "w"), indent=1)
for k, v in summary["runs"].items():
    print(k, "chosen", v["chosen"]["source"], "ppl", round(v["chosen"]["measured"]["ppl"], 3), "base", round(v["base"]["ppl"], 3),
          "tok/s", round(v["chosen"]["measured"]["decode_tok_s"]), "base", round(v["base"]["decode_tok_s"]),
          "MB", round(v["chosen"]["measured"]["bytes"] / 1e6, 2), "rank", v["rank_correlation"])
PY
