#!/usr/bin/env bash
# Where one batch-1 decode step spends its time on the GPU: runs `brisk bench --no-graphs` on a
# model under Nsight Compute (kernel durations and DRAM bytes, clocks left alone) and sums the
# kernels of the last decode step by kernel name. Needs ncu (the lent Firecracker H100 has it).
#   bench/profile_decode.sh BRISK MODEL_DIR OUT_DIR [extra brisk bench flags...]
# Writes OUT_DIR/ncu.csv (every kernel) and OUT_DIR/decode-step.txt (the summary).
set -euo pipefail
BRISK=$1 MODEL=$2 OUT=$3
shift 3
mkdir -p "$OUT"
# One warm-up and one timed repetition of a 4-token prompt and 3 new tokens: the last kernels
# launched belong to the final decode step.
ncu --clock-control none --csv --metrics gpu__time_duration.sum,dram__bytes_read.sum \
  "$BRISK" bench -m "$MODEL" --device cuda -p 4 -n 3 -r 1 --no-graphs "$@" >"$OUT/ncu.csv" 2>"$OUT/ncu.err"
python3 - "$OUT/ncu.csv" >"$OUT/decode-step.txt" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
head, rows = rows[0], rows[1:]
col = {name: i for i, name in enumerate(head)}
kernels = collections.OrderedDict()  # launch id -> [name, ns, bytes]
for r in rows:
    k = kernels.setdefault(r[col["ID"]], [r[col["Kernel Name"]].split("(")[0].split("<")[0], 0.0, 0.0])
    value = float(r[col["Metric Value"]].replace(",", ""))
    unit = r[col["Metric Unit"]]
    if r[col["Metric Name"]] == "gpu__time_duration.sum":
        k[1] = value * {"ns": 1, "nsecond": 1, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6}[unit]
    else:
        k[2] = value * {"B": 1, "byte": 1, "KB": 1e3, "Kbyte": 1e3, "MB": 1e6, "Mbyte": 1e6, "GB": 1e9, "Gbyte": 1e9}[unit]
launches = list(kernels.values())
# The decode step: the launches after the last argmax but one (each step ends in an argmax).
ends = [i for i, k in enumerate(launches) if "argmax" in k[0]]
step = launches[ends[-2] + 1: ends[-1] + 1] if len(ends) >= 2 else launches
total = sum(k[1] for k in step)
by_name = collections.defaultdict(lambda: [0, 0.0, 0.0])
for name, ns, b in step:
    by_name[name][0] += 1; by_name[name][1] += ns; by_name[name][2] += b
print(f"decode step: {len(step)} kernels, {total / 1e3:.1f} us summed kernel time")
print(f"{'kernel':60s} {'calls':>6s} {'us':>9s} {'share':>6s} {'GB/s':>7s} {'us/call':>8s}")
for name, (n, ns, b) in sorted(by_name.items(), key=lambda kv: -kv[1][1]):
    print(f"{name[:60]:60s} {n:6d} {ns / 1e3:9.1f} {ns / total:6.1%} {b / ns if ns else 0:7.0f} {ns / n / 1e3:8.2f}")
print("\nfirst layer in order:")
for name, ns, b in step[:24]:
    print(f"  {name[:60]:60s} {ns / 1e3:8.2f} us {b / 1e6:8.2f} MB {b / ns if ns else 0:7.0f} GB/s")
PY
cat "$OUT/decode-step.txt"
