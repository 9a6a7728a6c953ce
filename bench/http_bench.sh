#!/usr/bin/env bash
# The HTTP layer under 1,000 concurrent streams and 200 idle keep-alive connections (issue 18,
# section 3): this build against another brisk binary (the one before the change), alternating
# base, new, base, new on one machine; medians of the rounds in bench/results/http-LABEL.json.
#
#   BASE_BRISK=/path/to/old/brisk bench/http_bench.sh
# Make the base binary from a revision with: git worktree add /tmp/base REV &&
#   cmake -S /tmp/base -B /tmp/base/build -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C /tmp/base/build brisk
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_BRISK=${BASE_BRISK:?set BASE_BRISK to the brisk binary to compare with}
BASE_LABEL=${BASE_LABEL:-base}
NEW_BRISK=${NEW_BRISK:-build/tools/brisk/brisk}
MODEL=${MODEL:-../shared/models/sotu-llama}
STREAMS=${STREAMS:-1000}
IDLE=${IDLE:-200}
MAX_TOKENS=${MAX_TOKENS:-24}
ROUNDS=${ROUNDS:-2}
LABEL=${LABEL:-cpu-sotu-llama-$(hostname -s)}
OUT=${1:-bench/results/http-$LABEL.json}
# Room for every stream in one batch, so any wait is the HTTP layer's, not the scheduler's.
SERVE_FLAGS=(-m "$MODEL" -t 2 --ctx 256 --max-batch 1024 --kv-mem 1G --max-queue 100000 --port 0)

run_one() {  # binary -> report JSON on stdout
  local log pid port
  log=$(mktemp)
  "$1" serve "${SERVE_FLAGS[@]}" 2>"$log" &
  pid=$!
  for _ in $(seq 600); do
    port=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.2
  done
  python3 bench/http_load.py --url "http://127.0.0.1:$port" --pid "$pid" --streams "$STREAMS" --idle "$IDLE" \
      --max-tokens "$MAX_TOKENS" || echo '{"failed": true}'
  kill -TERM "$pid"; wait "$pid" || true
  rm -f "$log"
}

reports=()
for round in $(seq "$ROUNDS"); do
  for which in base new; do
    binary=$BASE_BRISK; [ "$which" = new ] && binary=$NEW_BRISK
    echo "== round $round: $which ($binary)" >&2
    reports+=("$which" "$(run_one "$binary")")
  done
done

python3 - "$OUT" "$BASE_LABEL" "$(git rev-parse --short HEAD)" "$MODEL" "${reports[@]}" <<'PY'
import datetime, json, platform, statistics, sys
out, base_label, head, model = sys.argv[1:5]
pairs = sys.argv[5:]
runs = {"base": [], "new": []}
for which, report in zip(pairs[0::2], pairs[1::2]):
    runs[which].append(json.loads(report))
def med(which, *path):
    values = []
    for r in runs[which]:
        v = r
        for key in path:
            v = v.get(key) if isinstance(v, dict) else None
        if v is not None:
            values.append(v)
    return statistics.median(values) if values else None
keys = [("completed",), ("exact_text",), ("waited_for_a_whole_stream",), ("wall_s",), ("output_tok_s",),
        ("headers_s", "p99"), ("ttft_s", "p50"), ("ttft_s", "p99"), ("stream_s", "max"),
        ("health_idle_s", "p50"), ("health_idle_s", "max"), ("health_under_load_s", "p50"),
        ("health_under_load_s", "max"), ("rss_per_idle_connection_bytes",), ("rss_bytes", "with_idle")]
medians = {w: {".".join(k): med(w, *k) for k in keys} for w in runs}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
result = {
    "machine": {"cpu": cpu, "cores": __import__("os").cpu_count(), "host": platform.node()},
    "date": datetime.date.today().isoformat(), "model": model, "new_revision": head, "base": base_label,
    "method": "bench/http_bench.sh: rounds alternate base, new; each opens the idle connections, then all "
              "streams at once (greedy, ignore_eos) while /health is probed every 100 ms; medians of rounds",
    "medians": medians,
    "ratios_new_over_base": {k: (medians["new"][k] / medians["base"][k])
                              if medians["new"][k] and medians["base"][k] else None
                              for k in ["wall_s", "ttft_s.p99", "headers_s.p99", "health_under_load_s.max"]},
    "runs": runs,
}
json.dump(result, open(out, "w"), indent=1)
print(json.dumps(medians, indent=1))
PY
