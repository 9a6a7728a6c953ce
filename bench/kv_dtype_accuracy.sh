#!/usr/bin/env bash
# Perplexity (--ctx 512) with the KV cache in each --kv-dtype against the fp32 cache, and the
# positions each holds per MiB. Writes bench/results/kv-dtype-accuracy-cpu.json (or $1).
#   MODELS="sotu-llama" TEXTS="sotu-test" DEVICE=cpu bench/kv_dtype_accuracy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BRISK=${BRISK:-./build/tools/brisk/brisk}
SHARED=${SHARED:-../shared}
THREADS=${THREADS:-2}
DEVICE=${DEVICE:-cpu}
OUT=${1:-bench/results/kv-dtype-accuracy-$DEVICE.json}
MODELS=${MODELS:-sotu-llama}
TEXTS=${TEXTS:-sotu-test}
KV_DTYPES=${KV_DTYPES:-f32 bf16 int8 fp8}
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT

for model in $MODELS; do
  for text in $TEXTS; do
    for kv in $KV_DTYPES; do
      echo "== $model $text kv $kv" >&2
      r=$("$BRISK" perplexity -m "$SHARED/models/$model" -f "$SHARED/data/text/$text.txt" --ctx 512 \
            -t "$THREADS" --device "$DEVICE" --kv-dtype "$kv" --json)
      echo "{\"model\": \"$model\", \"text\": \"$text\", \"result\": $r}" >> "$rows"
    done
  done
done

python3 - "$OUT" "$rows" "$DEVICE" <<'PY'
import json, subprocess, sys, datetime
out, rows, device = sys.argv[1], [json.loads(l) for l in open(sys.argv[2])], sys.argv[3]
base = {(r["model"], r["text"]): r["result"]["ppl"] for r in rows if r["result"]["kv_dtype"] == "f32"}
table = [{"model": r["model"], "text": r["text"], "kv_dtype": r["result"]["kv_dtype"], "ppl": r["result"]["ppl"],
          "ppl_vs_f32": r["result"]["ppl"] / base[(r["model"], r["text"])] - 1, "scored_tokens": r["result"]["scored"]}
         for r in rows]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
doc = {"machine": {"cpu": cpu, "cores": subprocess.check_output(["nproc"]).decode().strip(), "device": device},
       "date": datetime.date.today().isoformat(), "command": "bench/kv_dtype_accuracy.sh",
       "notes": "weights as stored (bf16, widened exactly to fp32); only the KV cache changes. int8/fp8 keep "
                "one fp32 absmax scale per (position, kv head)",
       "results": table}
json.dump(doc, open(out, "w"), indent=2)
for t in table:
    print(f"{t['model']:11s} {t['text']:15s} kv {t['kv_dtype']:5s} ppl {t['ppl']:9.3f} ({100*t['ppl_vs_f32']:+7.3f}%)")
PY
echo "wrote $OUT" >&2
