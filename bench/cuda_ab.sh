#!/usr/bin/env bash
# Before/after on one GPU, in one device call: this tree's brisk against a base revision's, runs
# alternated (base, new, base, new, ...) so that drift and noise fall on both alike.
#   git archive REV | gzip >.carry/base.tar.gz        (here, before the call)
#   BASE=.carry/base.tar.gz bench/cuda_ab.sh           (there; carry .carry and .debs)
# Builds the base's brisk in /tmp/brisk-base/build-gpu (scripts/gpu_check.sh with SRC=) unless
# BASE_BRISK names a built one, and this tree's in build-gpu; synthesizes llama3-8b (bf16); then
# ROUNDS (default 3) rounds of bs1 decode (-p 16 -n 256 -r 3) and batch-64 decode per side, plus
# perplexity and greedy ids of each model in $MODELS on both. Writes $OUT/cuda-ab.json: medians,
# new/base ratios, and whether perplexity and greedy ids are identical.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/build-gpu/out}
MODELS=${MODELS:-$ROOT/.carry/models}
TEXT=${TEXT:-$ROOT/.carry/text/sotu-test.txt}
ROUNDS=${ROUNDS:-3}
R=${RAW:-/tmp/brisk-ab-raw}
mkdir -p "$OUT" "$R"

if [ -z "${BASE_BRISK:-}" ]; then
  rm -rf /tmp/brisk-base && mkdir -p /tmp/brisk-base && tar xzf "${BASE:?BASE=tarball of the base revision}" -C /tmp/brisk-base
  SRC=/tmp/brisk-base SYSROOT=/tmp/brisk-sysroot-base TARGETS=brisk OUT="$R/base-build" \
    "$ROOT/scripts/gpu_check.sh" --build-only >"$R/base-build.txt" 2>&1 || { tail -20 "$R/base-build.txt"; exit 1; }
  BASE_BRISK=/tmp/brisk-base/build-gpu/tools/brisk/brisk
fi
[ -x "$ROOT/build-gpu/tools/brisk/brisk" ] || TARGETS=brisk OUT="$R/new-build" "$ROOT/scripts/gpu_check.sh" --build-only \
  >"$R/new-build.txt" 2>&1 || { tail -20 "$R/new-build.txt"; exit 1; }
NEW_BRISK="$ROOT/build-gpu/tools/brisk/brisk"
[ -d /tmp/brisk-sysroot ] && export LD_LIBRARY_PATH=/tmp/brisk-sysroot/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

L=/tmp/synth-llama3-8b
[ -d $L ] || "$NEW_BRISK" synth --shape llama3-8b --dtype bf16 -o $L >/dev/null 2>"$R/synth.err"
for round in $(seq 1 "$ROUNDS"); do
  for side in base new; do
    b=$([ $side = base ] && echo "$BASE_BRISK" || echo "$NEW_BRISK")
    "$b" bench -m $L --device cuda -p 16 -n 256 -r 3 --no-limits --json >"$R/bs1-$side-$round.json" 2>>"$R/bench-$side.err"
    "$b" bench -m $L --device cuda -p 16 -n 64 -r 1 --batch 64 --no-limits --json >"$R/b64-$side-$round.json" 2>>"$R/bench-$side.err"
  done
done
for m in "$MODELS"/*/; do
  name=$(basename "$m")
  for side in base new; do
    b=$([ $side = base ] && echo "$BASE_BRISK" || echo "$NEW_BRISK")
    "$b" perplexity -m "$m" -f "$TEXT" --ctx 512 --device cuda --json >"$R/ppl-$name-$side.json" 2>>"$R/ppl.err"
    "$b" generate -m "$m" -p "The State of the Union is" -n 64 --temp 0 --ignore-eos --device cuda --json \
      >"$R/greedy-$name-$side.json" 2>>"$R/ppl.err"
  done
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$R/gpu.txt"

python3 - "$R" "$OUT/cuda-ab.json" "$ROUNDS" <<'PY'
import json, os, statistics, sys, time
raw, out, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
def load(name):
    try:
        return json.load(open(os.path.join(raw, name)))
    except Exception as e:
        return {"error": repr(e)}
def med(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None
doc = {"machine": open(os.path.join(raw, "gpu.txt")).read().strip(), "date": time.strftime("%Y-%m-%d"),
       "command": "BASE=.carry/base.tar.gz bench/cuda_ab.sh", "model_shape": "llama3-8b (brisk synth, bf16)",
       "rounds": rounds, "order": "base then new, each round"}
for key, prefix, field in (("bs1_decode_tok_s", "bs1", "decode_tok_s"), ("batch64_decode_tok_s", "b64", None)):
    entry = {}
    for side in ("base", "new"):
        runs = [load(f"{prefix}-{side}-{r}.json") for r in range(1, rounds + 1)]
        vals = [(r.get("batch_tok_s", {}).get("64") if field is None else r.get(field)) for r in runs]
        entry[side] = {"median": med(vals), "runs": vals}
    b, n = entry["base"]["median"], entry["new"]["median"]
    entry["new_over_base"] = n / b if b and n else None
    doc[key] = entry
doc["shared_models"] = {}
for f in sorted(os.listdir(raw)):
    if f.startswith("ppl-") and f.endswith("-base.json"):
        name = f[4:-len("-base.json")]
        pb, pn = load(f), load(f"ppl-{name}-new.json")
        gb, gn = load(f"greedy-{name}-base.json"), load(f"greedy-{name}-new.json")
        doc["shared_models"][name] = {"ppl_base": pb.get("ppl"), "ppl_new": pn.get("ppl"),
                                      "ppl_identical": pb.get("ppl") == pn.get("ppl"),
                                      "greedy_ids_identical": gb.get("ids") == gn.get("ids") and "ids" in gb}
json.dump(doc, open(out, "w"), indent=1)
print(json.dumps(doc, indent=1))
PY
