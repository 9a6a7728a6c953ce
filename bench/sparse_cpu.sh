#!/usr/bin/env bash
# Issue 22's sparse int8 decode on the CPU: a synthetic tinyllama-1.1b (bf16) pruned by magnitude
# to each of $SPARSITIES (`brisk prune`), quantized to w8 (`brisk quantize`, RTN keeps the zeros),
# and decoded (`brisk bench`, 16-token prompt, 64 new, this machine's threads) against the dense
# w8 model, A/B alternated over $ROUNDS rounds; the CPU backend stores a w8 matrix sparse from
# kSparseMinZeroFraction zeros (backends/cpu/sparse_q8.h). Then structured pruning: the bf16 model
# with each of $STRUCTURED (unit:ratio, `brisk prune --structured`, weight-norm scores) removed,
# decoded against the dense bf16 model the same way. Writes $OUT/sparse-cpu.json.
#   bench/sparse_cpu.sh
#   SPARSITIES="0.7" STRUCTURED="" ROUNDS=3 bench/sparse_cpu.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BRISK:-$ROOT/build/tools/brisk/brisk}
OUT=${OUT:-/tmp/sparse-cpu}
SPARSITIES=${SPARSITIES:-0.5 0.7 0.9}
ROUNDS=${ROUNDS:-2}
STRUCTURED=${STRUCTURED:-neurons:0.25 neurons:0.5}
mkdir -p "$OUT"
L=$OUT/tinyllama
[ -d "$L" ] || "$B" synth --shape tinyllama-1.1b --dtype bf16 -o "$L" >/dev/null
[ -d "$L-w8" ] || "$B" quantize -m "$L" -o "$L-w8" --scheme w8 --json >"$OUT/quantize-dense.json"
for s in $SPARSITIES; do
  if [ ! -d "$L-$s-w8" ]; then
    "$B" prune -m "$L" -o "$L-$s" --method magnitude --sparsity "$s" --json >"$OUT/prune-$s.json" &&
      "$B" quantize -m "$L-$s" -o "$L-$s-w8" --scheme w8 --json >"$OUT/quantize-$s.json"
    rm -rf "$L-$s"  # the bf16 pruned folder (2.2 GB) is not benchmarked
  fi
done
for unit_ratio in $STRUCTURED; do
  [ -d "$L-${unit_ratio/:/-}" ] || "$B" prune -m "$L" -o "$L-${unit_ratio/:/-}" --structured "${unit_ratio%%:*}" \
    --ratio "${unit_ratio##*:}" --json >"$OUT/prune-${unit_ratio/:/-}.json"
done
for round in $(seq "$ROUNDS"); do
  for name in dense $SPARSITIES; do
    folder=$L-$name-w8
    [ "$name" = dense ] && folder=$L-w8
    "$B" bench -m "$folder" -p 16 -n 64 -r 3 --json >"$OUT/bench-$name-$round.json" 2>/dev/null
  done
  for name in bf16 $STRUCTURED; do
    folder=$L-${name/:/-}
    [ "$name" = bf16 ] && folder=$L
    "$B" bench -m "$folder" -p 16 -n 64 -r 3 --json >"$OUT/bench-${name/:/-}-$round.json" 2>/dev/null
  done
done
python3 - "$OUT" "$SPARSITIES" "$ROUNDS" "$STRUCTURED" <<'PY'
import json, os, statistics, sys
out, sparsities, rounds = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
structured = [s.replace(":", "-") for s in sys.argv[4].split()]
runs = {name: [json.load(open(os.path.join(out, f"bench-{name}-{r}.json"))) for r in range(1, rounds + 1)]
        for name in ["dense"] + sparsities}
first = runs["dense"][0]
result = {"machine": "AMD EPYC (Zen 5), %d threads" % first["threads"], "model": "synthetic tinyllama-1.1b, w8 (RTN)",
          "cpu_features": first["cpu_features"], "read_bandwidth_GBps": first["read_bandwidth_GBps"], "decode": {}}
dense = statistics.median(x["decode_tok_s"] for x in runs["dense"])
for name, xs in runs.items():
    tok_s = statistics.median(x["decode_tok_s"] for x in xs)
    entry = {"decode_tok_s": tok_s, "vs_dense_w8": tok_s / dense, "weight_bytes": xs[0]["weight_bytes"],
             "decode_GBps": statistics.median(x["decode_GBps"] for x in xs), "runs": [x["decode_tok_s"] for x in xs]}
    if name != "dense":
        entry["sparsity"] = json.load(open(os.path.join(out, f"prune-{name}.json")))["sparsity"]
    result["decode"][name] = entry
bf16 = [json.load(open(os.path.join(out, f"bench-bf16-{r}.json"))) for r in range(1, rounds + 1)]
bf16_tok_s = statistics.median(x["decode_tok_s"] for x in bf16)
result["structured_bf16"] = {"dense": {"decode_tok_s": bf16_tok_s, "weight_bytes": bf16[0]["weight_bytes"]}}
for name in structured:
    xs = [json.load(open(os.path.join(out, f"bench-{name}-{r}.json"))) for r in range(1, rounds + 1)]
    tok_s = statistics.median(x["decode_tok_s"] for x in xs)
    p = json.load(open(os.path.join(out, f"prune-{name}.json")))
    result["structured_bf16"][name] = {"decode_tok_s": tok_s, "vs_dense_bf16": tok_s / bf16_tok_s,
                                       "weight_bytes": xs[0]["weight_bytes"], "params_before": p["params_before"],
                                       "params_after": p["params_after"], "runs": [x["decode_tok_s"] for x in xs]}
json.dump(result, open(os.path.join(out, "sparse-cpu.json"), "w"), indent=1)
print(json.dumps(result, indent=1))
PY
