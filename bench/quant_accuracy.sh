#!/usr/bin/env bash
# Perplexity (--ctx 512) of each quantization scheme against the unquantized model, and size on
# disk: schemes x models x texts. Writes bench/results/quant-accuracy-cpu.json (or $1).
#   MODELS="sotu-llama sotu-qwen2" TEXTS="sotu-test" bench/quant_accuracy.sh
# A scheme name is the --scheme value plus suffixes: -asym (zero point), -gptq / -awq / -sq (the
# calibrated methods, on CALIB_TOKENS tokens of sotu-train); kv-int8 / kv-fp8 / kv-bf16 run the
# original weights with that --kv-dtype.
set -euo pipefail
cd "$(dirname "$0")/.."
BRISK=${BRISK:-./build/tools/brisk/brisk}
SHARED=${SHARED:-../shared}
THREADS=${THREADS:-2}
OUT=${1:-bench/results/quant-accuracy-cpu.json}
MODELS=${MODELS:-sotu-llama sotu-gpt2 sotu-qwen2}
TEXTS=${TEXTS:-sotu-test wikitext2-test}
SCHEMES=${SCHEMES:-w8 w8a8 w8a8-sq fp8 w4 w4-asym w4-asym-gptq w4-asym-awq nf4 log2 kv-int8 kv-fp8}
CALIB_TOKENS=${CALIB_TOKENS:-16384}
HEAD=${HEAD:-auto}  # brisk quantize --head: lm_head's policy (auto: 8 bits)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

rows="$WORK/rows.jsonl"
: > "$rows"
for model in $MODELS; do
  src="$SHARED/models/$model"
  for scheme in base $SCHEMES; do
    dir="$src"
    run_flags=()
    case "$scheme" in
      base) ;;
      kv-*) run_flags=(--kv-dtype "${scheme#kv-}") ;;
      *)
        dir="$WORK/$model-$scheme"
        flags=(--scheme "${scheme%%-*}" -t "$THREADS" --head "$HEAD")
        case "$scheme" in *-asym*) flags+=(--asym) ;; esac
        case "$scheme" in
          *-gptq) flags+=(--method gptq) ;;
          *-awq) flags+=(--method awq) ;;
          *-sq) flags+=(--method smoothquant) ;;
        esac
        case "$scheme" in
          *-gptq | *-awq | *-sq) flags+=(--calib "$SHARED/data/text/sotu-train.txt" --calib-tokens "$CALIB_TOKENS") ;;
        esac
        if ! "$BRISK" quantize -m "$src" -o "$dir" "${flags[@]}" --json > /dev/null 2> "$WORK/err"; then
          echo "== $model $scheme: not quantized: $(tail -1 "$WORK/err")" >&2
          echo "{\"model\": \"$model\", \"scheme\": \"$scheme\", \"error\": $(tail -1 "$WORK/err" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))')}" >> "$rows"
          continue
        fi
        ;;
    esac
    bytes=$(du -b "$dir"/*.safetensors | awk '{s += $1} END {print s}')
    for text in $TEXTS; do
      echo "== $model $scheme $text" >&2
      if ! r=$("$BRISK" perplexity -m "$dir" -f "$SHARED/data/text/$text.txt" --ctx 512 -t "$THREADS" \
          "${run_flags[@]}" --json 2> "$WORK/err"); then
        echo "{\"model\": \"$model\", \"scheme\": \"$scheme\", \"text\": \"$text\", \"error\": $(tail -1 "$WORK/err" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))')}" >> "$rows"
        continue
      fi
      echo "{\"model\": \"$model\", \"scheme\": \"$scheme\", \"text\": \"$text\", \"bytes\": $bytes, \"result\": $r}" >> "$rows"
    done
  done
done

python3 - "$OUT" "$rows" "$HEAD" <<'PY'
import json, platform, subprocess, sys, datetime
out, rows, head = sys.argv[1], [json.loads(l) for l in open(sys.argv[2])], sys.argv[3]
base = {(r["model"], r["text"]): r["result"]["ppl"] for r in rows if r["scheme"] == "base"}
table = []
for r in rows:
    if "error" in r:
        table.append(r)
        continue
    b = base[(r["model"], r["text"])]
    table.append({"model": r["model"], "scheme": r["scheme"] if r["scheme"] != "base" else "bf16 (original)",
                  "text": r["text"], "ppl": r["result"]["ppl"], "ppl_vs_original": r["result"]["ppl"] / b - 1,
                  "safetensors_bytes": r["bytes"], "scored_tokens": r["result"]["scored"]})
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
doc = {"machine": {"cpu": cpu, "cores": subprocess.check_output(["nproc"]).decode().strip()},
       "date": datetime.date.today().isoformat(), "command": "bench/quant_accuracy.sh",
       "notes": f"group 128, embeddings unquantized, lm_head by brisk quantize --head {head} (auto: the "
                "scheme if it has 8 bits, else w8; a head tied to the embeddings stays); RTN unless the scheme names gptq/awq/sq "
                "(calibrated on sotu-train); the original models are bf16, so 'bf16 (original)' equals fp32 "
                "arithmetic on the same weights (brisk widens bf16 exactly)",
       "results": table}
json.dump(doc, open(out, "w"), indent=2)
for t in table:
    if "error" in t:
        print(f"{t['model']:11s} {t['scheme']:16s} not quantized: {t['error']}")
        continue
    print(f"{t['model']:11s} {t['text']:15s} {t['scheme']:16s} ppl {t['ppl']:9.3f} ({100*t['ppl_vs_original']:+6.2f}%)  {t['safetensors_bytes']/2**20:6.1f} MiB")
PY
echo "wrote $OUT" >&2
