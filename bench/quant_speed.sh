#!/usr/bin/env bash
# CPU decode/prefill speed of each quantization scheme against bf16 on the synthetic
# tinyllama-1.1b shape (2 threads by default). Needs a quiet machine: timings on a shared,
# loaded host are meaningless. Writes bench/results/quant-speed-cpu-<host>.json (or $1).
# A scheme ending in +head also quantizes lm_head (brisk quantize --quantize-head):
#   SCHEMES="w8 w4 w4+head" bench/quant_speed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BRISK=${BRISK:-./build/tools/brisk/brisk}
THREADS=${THREADS:-2}
OUT=${1:-bench/results/quant-speed-cpu-$(hostname -s).json}
SYNTH_DIR=${SYNTH_DIR:-/tmp/brisk-synth-tinyllama-bf16}
SCHEMES=${SCHEMES:-w8 w4 w8a8 fp8 nf4 w8+head w4+head}

[ -d "$SYNTH_DIR" ] || "$BRISK" synth --shape tinyllama-1.1b --dtype bf16 --seed 1 -o "$SYNTH_DIR"
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
for scheme in bf16 $SCHEMES; do
  dir="$SYNTH_DIR"
  if [ "$scheme" != bf16 ]; then
    dir="$SYNTH_DIR-$scheme"
    flags=(--scheme "${scheme%+head}")
    [ "$scheme" != "${scheme%+head}" ] && flags+=(--quantize-head)
    [ -d "$dir" ] || "$BRISK" quantize -m "$SYNTH_DIR" -o "$dir" "${flags[@]}" > /dev/null
  fi
  echo "== $scheme" >&2
  r=$("$BRISK" bench -m "$dir" -t "$THREADS" -p 512 -n 32 -r 3 --json)
  echo "{\"scheme\": \"$scheme\", \"result\": $r}" >> "$rows"
done
python3 - "$OUT" "$rows" <<'PY'
import json, subprocess, sys, datetime
out, rows = sys.argv[1], [json.loads(l) for l in open(sys.argv[2])]
base = next(r["result"] for r in rows if r["scheme"] == "bf16")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
res = []
for r in rows:
    x = r["result"]
    res.append({"scheme": r["scheme"], "decode_tok_s": x["decode_tok_s"], "decode_vs_bf16": x["decode_tok_s"] / base["decode_tok_s"],
                "prefill_tok_s": x["prefill_tok_s"], "weight_bytes": x["weight_bytes"],
                "decode_GBps": x["decode_GBps"], "decode_roofline_fraction": x["decode_roofline_fraction"], "raw": x})
doc = {"machine": {"cpu": cpu, "cores": subprocess.check_output(["nproc"]).decode().strip()},
       "date": datetime.date.today().isoformat(), "command": "bench/quant_speed.sh", "shape": "tinyllama-1.1b", "results": res}
json.dump(doc, open(out, "w"), indent=2)
for t in res:
    print(f"{t['scheme']:6s} decode {t['decode_tok_s']:7.2f} tok/s ({t['decode_vs_bf16']:.2f}x bf16, "
          f"{100*t['decode_roofline_fraction']:.0f}% of read bandwidth)  prefill {t['prefill_tok_s']:7.1f} tok/s")
PY
echo "wrote $OUT" >&2
