#!/usr/bin/env bash
# Continuous batching against one-request-at-a-time serving, same model, same machine, same run:
# starts `brisk serve` with --max-batch $BATCH (64) and with --max-batch 1, drives each with
# bench/serve_load.py (identical request plan), and writes both reports plus the ratios to
# bench/results/serve-<label>.json (or $1).
#   bench/serve_bench.sh                                   # CPU, sotu-llama, 2 threads
#   MODEL=/tmp/llama3-8b DEVICE=cuda REQUESTS=1000 PROMPT="128 512" OUTPUT="128 256" \
#     RATE=inf VOCAB=128000 LABEL=h100-llama3-8b bench/serve_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BRISK=${BRISK:-./build/tools/brisk/brisk}
MODEL=${MODEL:-../shared/models/sotu-llama}
DEVICE=${DEVICE:-cpu}
THREADS=${THREADS:-2}
BATCH=${BATCH:-64}
REQUESTS=${REQUESTS:-128}
SERIAL_REQUESTS=${SERIAL_REQUESTS:-$REQUESTS}  # one-at-a-time is a steady rate: fewer requests measure it
RATE=${RATE:-inf}             # arrivals per second; inf = all at once (throughput)
CONCURRENCY=${CONCURRENCY:-128}
PROMPT=${PROMPT:-"16 64"}     # prompt tokens: min max
OUTPUT=${OUTPUT:-"32 64"}     # output tokens: min max
VOCAB=${VOCAB:-8000}
CTX=${CTX:-1024}
EXTRA=${EXTRA:-}              # more serve flags, e.g. "--kv-mem 8G"
LABEL=${LABEL:-$DEVICE-$(basename "$MODEL")-$(hostname -s)}
OUT=${1:-bench/results/serve-$LABEL.json}

run_one() {  # max-batch requests -> report JSON on stdout
  local log pid port report
  log=$(mktemp)
  # shellcheck disable=SC2086
  "$BRISK" serve -m "$MODEL" --device "$DEVICE" -t "$THREADS" --ctx "$CTX" --port 0 --max-batch "$1" \
      --max-queue 100000 $EXTRA 2>"$log" &
  pid=$!
  for _ in $(seq 600); do
    port=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.5
  done
  echo "== --max-batch $1 on port $port" >&2
  # shellcheck disable=SC2086
  report=$(python3 bench/serve_load.py --url "http://127.0.0.1:$port" --requests "$2" --rate "$RATE" \
      --concurrency "$CONCURRENCY" --prompt-len $PROMPT --output-len $OUTPUT --vocab "$VOCAB" || true)
  kill -TERM "$pid"; wait "$pid" || true
  rm -f "$log"
  echo "$report"
}

batched=$(run_one "$BATCH" "$REQUESTS")
serial=$(run_one 1 "$SERIAL_REQUESTS")

python3 - "$OUT" "$batched" "$serial" "$MODEL" "$DEVICE" "$THREADS" "$BATCH" <<'PY'
import datetime, json, platform, subprocess, sys
out, batched, serial, model, device, threads, batch = sys.argv[1:8]
batched, serial = json.loads(batched), json.loads(serial)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
gpu = None
if device.startswith("cuda"):
    try:
        gpu = subprocess.check_output(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]).decode().strip()
    except (OSError, subprocess.CalledProcessError):
        pass
doc = {
    "machine": {"cpu": cpu, "cores": subprocess.check_output(["nproc"]).decode().strip(), "gpu": gpu,
                "kernel": platform.release()},
    "date": datetime.date.today().isoformat(),
    "command": "bench/serve_bench.sh", "model": model, "device": device, "threads": int(threads),
    "results": {f"max_batch_{batch}": batched, "max_batch_1": serial},
    "ratio": {"req_per_s": batched["req_per_s"] / serial["req_per_s"] if serial["req_per_s"] else None,
              "output_tok_per_s": batched["output_tok_per_s"] / serial["output_tok_per_s"] if serial["output_tok_per_s"] else None},
}
json.dump(doc, open(out, "w"), indent=2)
for name, r in doc["results"].items():
    print(f"{name:14s} {r['completed']}/{r['requests']} ok  {r['req_per_s']:8.2f} req/s  {r['output_tok_per_s']:9.1f} out tok/s  "
          f"TTFT p50 {r['ttft_ms']['p50']} ms p99 {r['ttft_ms']['p99']} ms  ITL p50 {r['itl_ms']['p50']} ms p99 {r['itl_ms']['p99']} ms")
print(f"continuous batching / one at a time: {doc['ratio']['output_tok_per_s']:.2f}x output tok/s")
PY
echo "wrote $OUT" >&2
