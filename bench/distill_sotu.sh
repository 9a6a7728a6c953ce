#!/usr/bin/env bash
# Issue 21's distillation experiment on the CPU: teacher ../shared/models/sotu-llama (6 layers,
# hidden 384); a student of 4 layers, hidden 256, 4 heads, 2 kv heads, ffn 704 trained on
# sotu-train with the same tokens and schedule as
#   (a) ce:          cross-entropy only                        (brisk train on a new student)
#   (b) kd:          logits KD (alpha $ALPHA = 1, T $TEMP = 1, forward KL: the teacher's soft labels
#                    alone: alpha 1 at T 1 gained 22.8% over (a), alpha 0.5 at T 2 2.1%)
#   (c) kd_feature:  (b) + MSE between student layers 1, 3 and teacher layers 2, 5 through learned
#                    projections, balanced to the logits terms
#   (d) kd_init:     (c) with the student made of teacher layers 0, 2, 3, 5 (so at the teacher's
#                    width, 384: copying layers needs it)
# then every student's and the teacher's perplexity on sotu-test (ctx 512, `brisk perplexity`).
# Writes $OUT/distill-sotu.json (the shape of bench/results/distill-sotu.json).
#   STEPS=150 BATCH_TOKENS=2048 bench/distill_sotu.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BRISK:-$ROOT/build/tools/brisk/brisk}
SHARED=${SHARED:-$ROOT/../shared}
OUT=${OUT:-/tmp/distill-sotu}
STEPS=${STEPS:-150}
BATCH_TOKENS=${BATCH_TOKENS:-2048}
TEACHER=$SHARED/models/sotu-llama
TRAIN=$SHARED/data/text/sotu-train.txt
TEST=$SHARED/data/text/sotu-test.txt
mkdir -p "$OUT"
common=(--data "$TRAIN" --steps "$STEPS" --window 256 --batch-tokens "$BATCH_TOKENS" --lr 1e-3 --min-lr 1e-4
        --warmup 15 --seed 1 --json)
ALPHA=${ALPHA:-1.0}
TEMP=${TEMP:-1}
kd=(--teacher "$TEACHER" --alpha "$ALPHA" --temp "$TEMP")
feature=(--feature-layers 1:2,3:5 --balance-features)
shape=layers=4,hidden=256,heads=4,kv_heads=2,ffn=704
run() {  # name, command...
  local name=$1; shift
  [ -s "$OUT/$name.json" ] || "$@" -o "$OUT/$name" >"$OUT/$name.json" 2>"$OUT/$name.err" || { cat "$OUT/$name.err"; exit 1; }
  "$B" perplexity -m "$OUT/$name" -f "$TEST" --ctx 512 --json >"$OUT/$name.ppl.json" 2>/dev/null
}
# (a) CE: the same new student (distill's initializer at alpha 0 with no teacher signal).
run ce "$B" distill --teacher "$TEACHER" --student-shape $shape --alpha 0 "${common[@]}"
run kd "$B" distill "${kd[@]}" --student-shape $shape "${common[@]}"
run kd_feature "$B" distill "${kd[@]}" --student-shape $shape "${feature[@]}" "${common[@]}"
run kd_init "$B" distill "${kd[@]}" --init-from-teacher 0,2,3,5 "${feature[@]}" "${common[@]}"
"$B" perplexity -m "$TEACHER" -f "$TEST" --ctx 512 --json >"$OUT/teacher.ppl.json" 2>/dev/null
export STEPS BATCH_TOKENS ALPHA TEMP
python3 - "$OUT" <<'PY'
import json, os, struct, sys
out = sys.argv[1]
def load(n):
    return json.load(open(os.path.join(out, n)))
def params(folder):  # tensor elements in model.safetensors
    with open(os.path.join(folder, "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    total = 0
    for k, v in header.items():
        if k != "__metadata__":
            c = 1
            for d in v["shape"]: c *= d
            total += c
    return total
runs = {k: load(f"{k}.json") for k in ("ce", "kd", "kd_feature", "kd_init")}
doc = {
    "machine": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": \t") + f", {os.cpu_count()} threads",
    "command": "bench/distill_sotu.sh (STEPS=%s BATCH_TOKENS=%s ALPHA=%s TEMP=%s)" % (
        os.environ.get("STEPS", "150"), os.environ.get("BATCH_TOKENS", "2048"), os.environ.get("ALPHA", "1.0"),
        os.environ.get("TEMP", "1")),
    "teacher": "sotu-llama (6 layers, hidden 384)",
    "student": "4 layers, hidden 256, 4 heads, 2 kv heads, ffn 704 (kd_init: teacher layers 0,2,3,5 at hidden 384)",
    "teacher_ppl": load("teacher.ppl.json")["ppl"],
    "ce_student_ppl": load("ce.ppl.json")["ppl"],
    "kd_student_ppl": load("kd.ppl.json")["ppl"],
    "kd_feature_student_ppl": load("kd_feature.ppl.json")["ppl"],
    "kd_init_student_ppl": load("kd_init.ppl.json")["ppl"],
    "student_params": params(os.path.join(out, "kd")),
    "kd_init_student_params": params(os.path.join(out, "kd_init")),
    "tokens": runs["kd"]["tokens"],
    "runs": runs,
}
doc["kd_vs_ce"] = doc["kd_student_ppl"] / doc["ce_student_ppl"] - 1
json.dump(doc, open(os.path.join(out, "distill-sotu.json"), "w"), indent=1)
print(json.dumps({k: doc[k] for k in ("teacher_ppl", "ce_student_ppl", "kd_student_ppl", "kd_feature_student_ppl",
                                      "kd_init_student_ppl", "kd_vs_ce", "tokens")}))
PY
