#!/usr/bin/env bash
# Issue 22's pruning accuracy on the CPU: sotu-llama pruned by each method at each sparsity and
# N:M pattern (`brisk prune`; wanda and sparsegpt calibrated on $CALIB_TOKENS tokens of
# sotu-train), then perplexity on sotu-test at ctx 512 (`brisk perplexity`), with the dense model
# in the same run. Writes $OUT/prune-sotu-llama.json (the shape of bench/results/prune-sotu-llama.json).
#   bench/prune_sotu.sh
#   METHODS="magnitude sparsegpt" SETTINGS="0.5 2:4" bench/prune_sotu.sh
# Then --structured units at each of $STRUCTURED, and recovery: each of $RECOVER fine-tuned with
# `brisk train` (--keep-sparsity for the sparse ones) on sotu-train
# ($RECOVER_STEPS steps of 2048 tokens, lr 1e-4 -> 1e-5) and evaluated the same way.
# Pruned folders are kept in $OUT: a second run only does what is missing.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BRISK:-$ROOT/build/tools/brisk/brisk}
SHARED=${SHARED:-$ROOT/../shared}
OUT=${OUT:-/tmp/prune-sotu}
METHODS=${METHODS:-random magnitude wanda sparsegpt}
SETTINGS=${SETTINGS:-0.3 0.5 0.7 2:4 4:8}
CALIB_TOKENS=${CALIB_TOKENS:-16384}
STRUCTURED=${STRUCTURED:-neurons:0.25 neurons:0.5 heads:0.5 layers:0.33 layers:0.5 hidden:0.25 hidden:0.5}
RECOVER=${RECOVER:-sparsegpt-2of4 magnitude-2of4 neurons-0.5 heads-0.5 layers-0.5 hidden-0.5}
RECOVER_STEPS=${RECOVER_STEPS:-60}
M=$SHARED/models/sotu-llama
TEXT=$SHARED/data/text
mkdir -p "$OUT"
[ -s "$OUT/dense.ppl.json" ] || "$B" perplexity -m "$M" -f "$TEXT/sotu-test.txt" --ctx 512 --json >"$OUT/dense.ppl.json"
for method in $METHODS; do
  for setting in $SETTINGS; do
    name=$method-${setting/:/of}
    case $setting in
      *:*) what=(--pattern "$setting") ;;
      *) what=(--sparsity "$setting") ;;
    esac
    calib=()
    [[ $method == wanda || $method == sparsegpt ]] && calib=(--calib "$TEXT/sotu-train.txt" --calib-tokens "$CALIB_TOKENS")
    [ -s "$OUT/$name.prune.json" ] ||
      "$B" prune -m "$M" -o "$OUT/$name" --method "$method" "${what[@]}" "${calib[@]}" --json >"$OUT/$name.prune.json" ||
      { echo "prune $name failed" >&2; continue; }
    [ -s "$OUT/$name.ppl.json" ] ||
      "$B" perplexity -m "$OUT/$name" -f "$TEXT/sotu-test.txt" --ctx 512 --json >"$OUT/$name.ppl.json"
    echo "$name $(python3 -c "import json; print(json.load(open('$OUT/$name.ppl.json'))['ppl'])")"
  done
done
# Structured: whole MLP channels or kv-head groups removed (calibrated activation scores), a
# smaller model. STRUCTURED lists unit:ratio.
for unit_ratio in $STRUCTURED; do
  unit=${unit_ratio%%:*} ratio=${unit_ratio##*:}
  name=$unit-$ratio
  [ -s "$OUT/$name.prune.json" ] ||
    "$B" prune -m "$M" -o "$OUT/$name" --structured "$unit" --ratio "$ratio" --calib "$TEXT/sotu-train.txt" \
      --calib-tokens "$CALIB_TOKENS" --json >"$OUT/$name.prune.json" || { echo "prune $name failed" >&2; continue; }
  [ -s "$OUT/$name.ppl.json" ] ||
    "$B" perplexity -m "$OUT/$name" -f "$TEXT/sotu-test.txt" --ctx 512 --json >"$OUT/$name.ppl.json"
  echo "$name $(python3 -c "import json; print(json.load(open('$OUT/$name.ppl.json'))['ppl'])")"
done
export CALIB_TOKENS RECOVER_STEPS
for name in $RECOVER; do
  keep=(--keep-sparsity)  # unstructured / N:M zeros stay; a structurally pruned model has none
  [[ $name == neurons-* || $name == heads-* || $name == layers-* || $name == hidden-* ]] && keep=()
  [ -d "$OUT/$name" ] || continue
  [ -s "$OUT/$name.recovered.json" ] ||
    "$B" train -m "$OUT/$name" "${keep[@]}" --data "$TEXT/sotu-train.txt" --steps "$RECOVER_STEPS" --window 256 \
      --batch-tokens 2048 --lr 1e-4 --min-lr 1e-5 --warmup 10 --seed 1 --json -o "$OUT/$name.recovered" \
      >"$OUT/$name.recovered.json" || { echo "recovery of $name failed" >&2; continue; }
  [ -s "$OUT/$name.recovered.ppl.json" ] ||
    "$B" perplexity -m "$OUT/$name.recovered" -f "$TEXT/sotu-test.txt" --ctx 512 --json >"$OUT/$name.recovered.ppl.json"
  echo "$name recovered $(python3 -c "import json; print(json.load(open('$OUT/$name.recovered.ppl.json'))['ppl'])")"
done
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
dense = json.load(open(os.path.join(out, "dense.ppl.json")))["ppl"]
results = {}
for f in sorted(os.listdir(out)):
    if f.endswith(".ppl.json") and f != "dense.ppl.json" and ".recovered" not in f:
        name = f[:-len(".ppl.json")]
        method, setting = name.split("-", 1)
        prune = json.load(open(os.path.join(out, name + ".prune.json")))
        results.setdefault(method, {})[setting.replace("of", ":")] = {
            "ppl": json.load(open(os.path.join(out, f)))["ppl"], "prune_seconds": prune["seconds"],
            **({"sparsity": prune["sparsity"]} if "sparsity" in prune else
               {"units_kept": prune.get("units_after", prune.get("width_after")), "params": prune["params_after"]})}
doc = {
    "machine": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": \t") + f", {os.cpu_count()} threads",
    "command": "bench/prune_sotu.sh", "model": "sotu-llama (6 layers, hidden 384; its 36 decoder matrices pruned)",
    "eval": "sotu-test, ctx 512, brisk perplexity", "calibration": "wanda, sparsegpt: %s sotu-train tokens, layer by layer"
    % os.environ.get("CALIB_TOKENS", "16384"),
    "dense_ppl": dense, "ppl": {m: {s: r["ppl"] for s, r in v.items()} for m, v in results.items()}, "runs": results,
    "recovered_ppl": {f[:-len(".recovered.ppl.json")]: json.load(open(os.path.join(out, f)))["ppl"]
                      for f in sorted(os.listdir(out)) if f.endswith(".recovered.ppl.json")},
    "recovery": "brisk train (--keep-sparsity but for the structured ones), %s steps of 2048 sotu-train tokens, lr 1e-4 -> 1e-5"
                % os.environ.get("RECOVER_STEPS", "60"),
}
json.dump(doc, open(os.path.join(out, "prune-sotu-llama.json"), "w"), indent=1)
print(json.dumps({"dense": dense, **doc["ppl"]}))
PY
