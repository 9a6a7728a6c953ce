#!/usr/bin/env bash
# CPU decode/prefill speed of each quantization scheme against bf16 on a synthetic shape
# (SHAPE, default tinyllama-1.1b; 2 threads by default), ROUNDS rounds (default 3). On a shared host the
# absolute figures move with the load; the per-round ratios much less, and less still when a
# round is short: PROMPT=16 (default 512) leaves out the prefill runs and makes a round a few
# seconds per scheme. BATCH=64 also decodes 64 sequences together (brisk bench --batch) and
# reports that throughput's ratio too. Writes bench/results/quant-speed-cpu-<host>.json (or $1).
# A scheme may name its lm_head policy after a colon (brisk quantize --head; default auto: 8 bits):
#   SCHEMES="w8 w4 w4:keep w4:same" bench/quant_speed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BRISK=${BRISK:-./build/tools/brisk/brisk}
THREADS=${THREADS:-2}
OUT=${1:-bench/results/quant-speed-cpu-$(hostname -s).json}
SHAPE=${SHAPE:-tinyllama-1.1b}  # a brisk synth shape, e.g. llama3-8b (16 GB of bf16)
SYNTH_DIR=${SYNTH_DIR:-/tmp/brisk-synth-${SHAPE%-1.1b}-bf16}
SCHEMES=${SCHEMES:-w8 w4 w8a8 fp8 nf4 w8:keep w4:keep}

[ -d "$SYNTH_DIR" ] || "$BRISK" synth --shape "$SHAPE" --dtype bf16 --seed 1 -o "$SYNTH_DIR"
# Rounds alternate the schemes (bf16, then each scheme, then again), so a change in the host's
# load hits every scheme alike; each scheme's ratio to bf16 is the median over rounds of the ratio
# within a round.
ROUNDS=${ROUNDS:-3}
PROMPT=${PROMPT:-512}
NEW=${NEW:-32}   # tokens decoded per repetition (per sequence with BATCH)
REPS=${REPS:-3}
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
for scheme in $SCHEMES; do
  dir="$SYNTH_DIR-$scheme"
  flags=(--scheme "${scheme%%:*}")
  [ "$scheme" != "${scheme%%:*}" ] && flags+=(--head "${scheme#*:}")
  [ -d "$dir" ] || "$BRISK" quantize -m "$SYNTH_DIR" -o "$dir" "${flags[@]}" > /dev/null
done
for round in $(seq "$ROUNDS"); do
  for scheme in bf16 $SCHEMES; do
    dir="$SYNTH_DIR"
    [ "$scheme" != bf16 ] && dir="$SYNTH_DIR-$scheme"
    echo "== round $round: $scheme" >&2
    r=$("$BRISK" bench -m "$dir" -t "$THREADS" -p "$PROMPT" -n "$NEW" -r "$REPS" ${BATCH:+--batch "$BATCH"} --json)
    echo "{\"round\": $round, \"scheme\": \"$scheme\", \"result\": $r}" >> "$rows"
  done
done
python3 - "$OUT" "$rows" "$ROUNDS" "brisk bench -p $PROMPT -n $NEW -r $REPS${BATCH:+ --batch $BATCH}" "${BATCH:-}" \
  "$SHAPE" <<'PY'
import json, statistics, subprocess, sys, datetime
out, rows, rounds, bench = sys.argv[1], [json.loads(l) for l in open(sys.argv[2])], int(sys.argv[3]), sys.argv[4]
batch, shape = sys.argv[5], sys.argv[6]
schemes = list(dict.fromkeys(r["scheme"] for r in rows))
by = {(r["round"], r["scheme"]): r["result"] for r in rows}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
med = statistics.median
res = []
for s in schemes:
    runs = [by[(k, s)] for k in range(1, rounds + 1)]
    ratios = [by[(k, s)]["decode_tok_s"] / by[(k, "bf16")]["decode_tok_s"] for k in range(1, rounds + 1)]
    res.append({"scheme": s, "decode_tok_s": med(x["decode_tok_s"] for x in runs), "decode_vs_bf16": med(ratios),
                "decode_vs_bf16_rounds": ratios, "prefill_tok_s": med(x["prefill_tok_s"] for x in runs),
                "weight_bytes": runs[0]["weight_bytes"],
                "decode_roofline_fraction": med(x["decode_roofline_fraction"] for x in runs),
                "read_bandwidth_GBps": med(x["read_bandwidth_GBps"] for x in runs), "raw": runs})
    if batch:
        b = lambda k, s: by[(k, s)]["batch_tok_s"][batch]
        res[-1][f"batch{batch}_tok_s"] = med(b(k, s) for k in range(1, rounds + 1))
        res[-1][f"batch{batch}_vs_bf16"] = med(b(k, s) / b(k, "bf16") for k in range(1, rounds + 1))
doc = {"machine": {"cpu": cpu, "cores": subprocess.check_output(["nproc"]).decode().strip()},
       "date": datetime.date.today().isoformat(), "command": "bench/quant_speed.sh", "rounds": rounds,
       "bench": bench,
       "shape": shape, "results": res}
json.dump(doc, open(out, "w"), indent=2)
for t in res:
    print(f"{t['scheme']:8s} decode {t['decode_tok_s']:7.2f} tok/s ({t['decode_vs_bf16']:.2f}x bf16, rounds "
          + " ".join(f"{x:.2f}" for x in t["decode_vs_bf16_rounds"])
          + f"; {100*t['decode_roofline_fraction']:.0f}% of read bandwidth)  prefill {t['prefill_tok_s']:7.1f} tok/s"
          + (f"  batch {batch} {t[f'batch{batch}_tok_s']:7.1f} tok/s ({t[f'batch{batch}_vs_bf16']:.2f}x)" if batch else ""))
PY
echo "wrote $OUT" >&2
