#!/usr/bin/env bash
# Perplexity (--ctx 512) of each quantization scheme against the unquantized model, and size on
# disk: schemes x models x texts. Writes bench/results/quant-accuracy-cpu.json (or $1).
#   MODELS="sotu-llama sotu-qwen2" TEXTS="sotu-test" bench/quant_accuracy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BRISK=${BRISK:-./build/tools/brisk/brisk}
SHARED=${SHARED:-../shared}
THREADS=${THREADS:-2}
OUT=${1:-bench/results/quant-accuracy-cpu.json}
MODELS=${MODELS:-sotu-llama sotu-gpt2 sotu-qwen2}
TEXTS=${TEXTS:-sotu-test wikitext2-test}
SCHEMES=${SCHEMES:-w8 w8a8 fp8 w4 w4-asym nf4 log2}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

rows="$WORK/rows.jsonl"
: > "$rows"
for model in $MODELS; do
  src="$SHARED/models/$model"
  for scheme in base $SCHEMES; do
    dir="$src"
    if [ "$scheme" != base ]; then
      dir="$WORK/$model-$scheme"
      flags=(--scheme "${scheme%-asym}")
      [ "$scheme" != "${scheme%-asym}" ] && flags+=(--asym)
      "$BRISK" quantize -m "$src" -o "$dir" "${flags[@]}" --json > /dev/null
    fi
    bytes=$(du -b "$dir"/*.safetensors | awk '{s += $1} END {print s}')
    for text in $TEXTS; do
      echo "== $model $scheme $text" >&2
      r=$("$BRISK" perplexity -m "$dir" -f "$SHARED/data/text/$text.txt" --ctx 512 -t "$THREADS" --json)
      echo "{\"model\": \"$model\", \"scheme\": \"$scheme\", \"text\": \"$text\", \"bytes\": $bytes, \"result\": $r}" >> "$rows"
    done
  done
done

python3 - "$OUT" "$rows" <<'PY'
import json, platform, subprocess, sys, datetime
out, rows = sys.argv[1], [json.loads(l) for l in open(sys.argv[2])]
base = {(r["model"], r["text"]): r["result"]["ppl"] for r in rows if r["scheme"] == "base"}
table = []
for r in rows:
    b = base[(r["model"], r["text"])]
    table.append({"model": r["model"], "scheme": r["scheme"] if r["scheme"] != "base" else "bf16 (original)",
                  "text": r["text"], "ppl": r["result"]["ppl"], "ppl_vs_original": r["result"]["ppl"] / b - 1,
                  "safetensors_bytes": r["bytes"], "scored_tokens": r["result"]["scored"]})
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
doc = {"machine": {"cpu": cpu, "cores": subprocess.check_output(["nproc"]).decode().strip()},
       "date": datetime.date.today().isoformat(), "command": "bench/quant_accuracy.sh",
       "notes": "RTN, group 128, lm_head and embeddings unquantized; the original models are bf16, so "
                "'bf16 (original)' equals fp32 arithmetic on the same weights (brisk widens bf16 exactly)",
       "results": table}
json.dump(doc, open(out, "w"), indent=2)
for t in table:
    print(f"{t['model']:11s} {t['text']:15s} {t['scheme']:16s} ppl {t['ppl']:9.3f} ({100*t['ppl_vs_original']:+6.2f}%)  {t['safetensors_bytes']/2**20:6.1f} MiB")
PY
echo "wrote $OUT" >&2
