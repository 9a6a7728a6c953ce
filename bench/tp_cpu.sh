#!/usr/bin/env bash
# Issue 23's CPU model parallelism: a synthetic tinyllama-1.1b (bf16) decoded and prefilled by 2
# ranks x 1 thread, as 2 tensor-parallel shards (`mpirun -np 2 brisk bench --tp 2 -t 1`) and as 2
# pipeline stages (`--pp 2`: the 128-token prefill runs as 2 micro-batches of 64 that overlap, the
# decode steps of one sequence cannot), against 1 process x 2 threads, in alternating rounds
# (medians), then the all-reduce latency / bandwidth of brisk's communicator
# against a bare MPI_Allreduce loop (build/bench/allreduce_bench). Writes $OUT/tp-cpu.json.
#   bench/tp_cpu.sh            ROUNDS=5 bench/tp_cpu.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BRISK:-$ROOT/build/tools/brisk/brisk}
AR=${ALLREDUCE_BENCH:-$ROOT/build/bench/allreduce_bench}
OUT=${OUT:-/tmp/tp-cpu}
ROUNDS=${ROUNDS:-3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mkdir -p "$OUT"
L=$OUT/tinyllama
[ -d "$L" ] || "$B" synth --shape tinyllama-1.1b --dtype bf16 -o "$L" >/dev/null
for round in $(seq "$ROUNDS"); do
  "$B" bench -m "$L" -p 128 -n 64 -r 3 -t 2 --json >"$OUT/one-$round.json" 2>/dev/null
  mpirun -np 2 "$B" bench -m "$L" -p 128 -n 64 -r 3 -t 1 --tp 2 --json >"$OUT/tp2-$round.json" 2>/dev/null
  mpirun -np 2 "$B" bench -m "$L" -p 128 -n 64 -r 3 -t 1 --pp 2 --json >"$OUT/pp2-$round.json" 2>/dev/null
done
mpirun -np 2 "$AR" $((64 << 20)) >"$OUT/allreduce.json"
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def med(prefix, key):
    return statistics.median(json.load(open(os.path.join(out, f"{prefix}-{r}.json")))[key] for r in range(1, rounds + 1))
one = {k: med("one", k) for k in ("decode_tok_s", "prefill_tok_s")}
tp2 = {k: med("tp2", k) for k in ("decode_tok_s", "prefill_tok_s")}
pp2 = {k: med("pp2", k) for k in ("decode_tok_s", "prefill_tok_s")}
cpu = open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": \t")
result = {"machine": f"{cpu}, {os.cpu_count()} threads", "command": "bench/tp_cpu.sh",
          "model": "synthetic tinyllama-1.1b, bf16 (22 layers, 32 heads / 4 kv heads, MLP 5632)",
          "bench": "brisk bench -p 128 -n 64 -r 3, medians over %d alternating rounds" % rounds,
          "one_process_2_threads": one, "tp2_2_ranks_1_thread": tp2,
          "tp2_vs_one": {k: tp2[k] / one[k] for k in one},
          "pp2_2_ranks_1_thread": pp2, "pp2_vs_one": {k: pp2[k] / one[k] for k in one},
          "allreduce": json.load(open(os.path.join(out, "allreduce.json")))}
json.dump(result, open(os.path.join(out, "tp-cpu.json"), "w"), indent=1)
print(json.dumps({k: result[k] for k in ("one_process_2_threads", "tp2_vs_one", "pp2_vs_one")}))
PY
