#!/usr/bin/env bash
# Issue 22's low-rank results on the CPU: sotu-llama factored by each method at each compression
# (`brisk lowrank --compression C`; asvd and svd-llm calibrated on $CALIB_TOKENS tokens of
# sotu-train), perplexity on sotu-test at ctx 512 (`brisk perplexity`) with the dense model in the
# same run, then decode and prefill speed (`brisk bench`, this machine's CPUs) of the dense model
# against svd-llm at each of $SPEED. Writes $OUT/lowrank-sotu-llama.json (the shape of
# bench/results/lowrank-sotu-llama.json). Factored folders are kept in $OUT: a rerun only does
# what is missing.
#   bench/lowrank_sotu.sh
#   METHODS=svd-llm COMPRESSIONS="0.2" bench/lowrank_sotu.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BRISK:-$ROOT/build/tools/brisk/brisk}
SHARED=${SHARED:-$ROOT/../shared}
OUT=${OUT:-/tmp/lowrank-sotu}
METHODS=${METHODS:-svd asvd svd-llm}
COMPRESSIONS=${COMPRESSIONS:-0.1 0.2 0.3 0.4}
CALIB_TOKENS=${CALIB_TOKENS:-16384}
SPEED=${SPEED:-0.2 0.4}
M=$SHARED/models/sotu-llama
TEXT=$SHARED/data/text
mkdir -p "$OUT"
ppl() { [ -s "$OUT/$1.ppl.json" ] || "$B" perplexity -m "$2" -f "$TEXT/sotu-test.txt" --ctx 512 --json >"$OUT/$1.ppl.json"; }
ppl dense "$M"
for method in $METHODS; do
  calib=()
  [[ $method != svd ]] && calib=(--calib "$TEXT/sotu-train.txt" --calib-tokens "$CALIB_TOKENS")
  for c in $COMPRESSIONS; do
    name=$method-$c
    [ -s "$OUT/$name.lowrank.json" ] ||
      "$B" lowrank -m "$M" -o "$OUT/$name" --method "$method" --compression "$c" "${calib[@]}" --json \
        >"$OUT/$name.lowrank.json" || { echo "lowrank $name failed" >&2; continue; }
    ppl "$name" "$OUT/$name"
    echo "$name $(python3 -c "import json; print(json.load(open('$OUT/$name.ppl.json'))['ppl'])")"
  done
done
# Speed, dense and factored alternating (A, B, A, ...) so drift on a shared machine hits both.
for round in 1 2; do
  for name in dense $(for c in $SPEED; do echo svd-llm-$c; done); do
    folder=$OUT/$name
    [ "$name" = dense ] && folder=$M
    [ -d "$folder" ] || continue
    "$B" bench -m "$folder" -p 128 -n 64 -r 3 --json >"$OUT/$name.bench$round.json" 2>/dev/null
  done
done
python3 - "$OUT" "$METHODS" "$COMPRESSIONS" "$SPEED" <<'PY'
import json, os, platform, statistics, sys
out, methods, compressions, speed = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4].split()
def load(name):
    try:
        return json.load(open(os.path.join(out, name)))
    except Exception:
        return None
dense = load("dense.ppl.json")["ppl"]
result = {"machine": platform.node() + " " + platform.processor(), "model": "sotu-llama", "text": "sotu-test",
          "ctx": 512, "dense_ppl": dense, "ppl": {}, "params": {}, "speed": {}}
for m in methods:
    for c in compressions:
        p, r = load(f"{m}-{c}.ppl.json"), load(f"{m}-{c}.lowrank.json")
        if p and r:
            result["ppl"].setdefault(m, {})[c] = p["ppl"]
            result["params"].setdefault(m, {})[c] = {"before": r["params_before"], "after": r["params_after"],
                                                     "compression": r["compression"]}
for name in ["dense"] + [f"svd-llm-{c}" for c in speed]:
    runs = [load(f"{name}.bench{k}.json") for k in (1, 2)]
    runs = [x for x in runs if x]
    if runs:
        result["speed"][name] = {k: statistics.median(x[k] for x in runs)
                                 for k in ("decode_tok_s", "prefill_tok_s", "weight_bytes", "decode_roofline_fraction") if k in runs[0]}
for name, s in result["speed"].items():
    if name != "dense" and "dense" in result["speed"]:
        s["decode_vs_dense"] = s["decode_tok_s"] / result["speed"]["dense"]["decode_tok_s"]
        s["prefill_vs_dense"] = s["prefill_tok_s"] / result["speed"]["dense"]["prefill_tok_s"]
json.dump(result, open(os.path.join(out, "lowrank-sotu-llama.json"), "w"), indent=1)
print(json.dumps(result, indent=1))
PY
