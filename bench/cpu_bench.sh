#!/usr/bin/env bash
# CPU speed of brisk against this machine's own limits, measured in the same run:
#   brisk bench on sotu-llama and on a synthetic tinyllama-1.1b (bf16), 2 threads by default.
# Writes bench/results/cpu-<host>.json (or $1). Quote the medians it prints.
set -euo pipefail
cd "$(dirname "$0")/.."
BRISK=${BRISK:-./build/tools/brisk/brisk}
SHARED=${SHARED:-../shared}
THREADS=${THREADS:-2}
OUT=${1:-bench/results/cpu-$(hostname -s).json}
SYNTH_DIR=${SYNTH_DIR:-/tmp/brisk-synth-tinyllama-bf16}

[ -d "$SYNTH_DIR" ] || "$BRISK" synth --shape tinyllama-1.1b --dtype bf16 --seed 1 -o "$SYNTH_DIR"

run() {  # name, model dir, extra flags
  echo "== $1" >&2
  "$BRISK" bench -m "$2" -t "$THREADS" --json "${@:3}"
}
# Default (exact fp32 arithmetic on bf16 weights) and --bf16-fast (bf16 dot products).
llama=$(run sotu-llama "$SHARED/models/sotu-llama" -p 512 -n 128 -r 5)
llama_fast=$(run sotu-llama-bf16-fast "$SHARED/models/sotu-llama" -p 512 -n 128 -r 5 --bf16-fast)
tiny=$(run tinyllama-1.1b-bf16 "$SYNTH_DIR" -p 512 -n 32 -r 3)
tiny_fast=$(run tinyllama-1.1b-bf16-fast "$SYNTH_DIR" -p 512 -n 32 -r 3 --bf16-fast)

python3 - "$OUT" "$llama" "$llama_fast" "$tiny" "$tiny_fast" <<'PY'
import json, platform, subprocess, sys, datetime
out = sys.argv[1]
llama, llama_fast, tiny, tiny_fast = (json.loads(a) for a in sys.argv[2:6])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
doc = {
    "machine": {"cpu": cpu, "cores": subprocess.check_output(["nproc"]).decode().strip(),
                "kernel": platform.release(), "features": llama.get("cpu_features")},
    "date": datetime.date.today().isoformat(),
    "command": "bench/cpu_bench.sh",
    "results": {"sotu-llama": llama, "sotu-llama --bf16-fast": llama_fast,
                "tinyllama-1.1b-bf16": tiny, "tinyllama-1.1b-bf16 --bf16-fast": tiny_fast},
}
json.dump(doc, open(out, "w"), indent=2)
for name, r in doc["results"].items():
    print(f"{name:34s} prefill {r['prefill_tok_s']:9.1f} tok/s ({r['prefill_gflops']:6.1f} GFLOP/s, "
          f"{100*r['prefill_peak_fraction']:5.1f}% of {r['prefill_peak_kind']} peak)  "
          f"decode {r['decode_tok_s']:8.2f} tok/s ({r['decode_GBps']:5.1f} GB/s, "
          f"{100*r['decode_roofline_fraction']:5.1f}% of {r['read_bandwidth_GBps']:.1f} GB/s)")
PY
echo "wrote $OUT" >&2
