#!/usr/bin/env bash
# GPU benchmark and checks in one device call: build (scripts/gpu_check.sh: GPU op and golden
# tests), then on the shared models --device cuda perplexity and greedy parity, then a synthetic
# llama3-8b (bf16): batch-1 decode (16-token prompt, 256 new), time to first token at 128/512/2048,
# the device's copy bandwidth and GEMM peak (bench/cuda_op_bench), and transformers on the same
# weights (bench/peer_transformers.py). Writes $OUT/cuda-decode.json; prints a summary last.
# Models come from $MODELS (default .carry/models) with the sotu-test text in .carry/text.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/build-gpu/out}
MODELS=${MODELS:-$ROOT/.carry/models}
TEXT=${TEXT:-$ROOT/.carry/text/sotu-test.txt}
mkdir -p "$OUT"
export OUT
"$ROOT/scripts/gpu_check.sh" --no-bench >"$OUT/gpu_check.txt" 2>&1
tail -12 "$OUT/gpu_check.txt"
ninja -C "$ROOT/build-gpu" brisk cuda_op_bench >"$OUT/build-brisk.log" 2>&1 || { tail -20 "$OUT/build-brisk.log"; exit 1; }
B="$ROOT/build-gpu/tools/brisk/brisk"
# Shared libraries unpacked by gpu_check.sh from .debs/ on machines without the dev packages.
[ -d /tmp/brisk-sysroot ] && export LD_LIBRARY_PATH=/tmp/brisk-sysroot/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
R="$OUT/raw"
mkdir -p "$R"

for m in "$MODELS"/*/; do
  name=$(basename "$m")
  "$B" perplexity -m "$m" -f "$TEXT" --ctx 512 --device cuda --json >"$R/ppl-$name.json" 2>"$R/ppl-$name.err"
  "$B" generate -m "$m" -p "The State of the Union is" -n 64 --temp 0 --ignore-eos --device cuda --json \
    >"$R/greedy-$name.json" 2>>"$R/ppl-$name.err"
done

timeout 120 "$ROOT/build-gpu/bench/cuda_op_bench" --json "$R/ops.json" >"$R/ops.log" 2>&1
for shape in llama3-8b qwen2.5-0.5b; do
  [ -d /tmp/synth-$shape ] || "$B" synth --shape $shape --dtype bf16 -o /tmp/synth-$shape >/dev/null 2>"$R/synth-$shape.err"
  "$B" bench -m /tmp/synth-$shape --device cuda -p 16 -n 256 -r 3 --json >"$R/bench-$shape.json" 2>"$R/bench-$shape.err"
  [ $shape = llama3-8b ] || continue
  for p in 128 512 2048; do
    "$B" bench -m /tmp/synth-$shape --device cuda -p $p -n 1 -r 5 --json >"$R/ttft-$shape-$p.json" 2>>"$R/bench-$shape.err"
  done
done
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >"$R/gpu.txt"
LD_LIBRARY_PATH= timeout ${PEER_TIMEOUT:-270} python3 "$ROOT/bench/peer_transformers.py" --model /tmp/synth-llama3-8b --prompt 16 --new 256 \
  >"$R/peer.jsonl" 2>"$R/peer.err"
tail -n 1 "$R/peer.jsonl" >"$R/peer.json"

python3 - "$R" "$OUT/cuda-decode.json" <<'PY'
import glob, json, os, sys
raw, out = sys.argv[1], sys.argv[2]
def load(name):
    try:
        return json.load(open(os.path.join(raw, name)))
    except Exception as e:
        return {"error": repr(e)}
ops = load("ops.json")
peer = load("peer.json")
doc = {"machine": open(os.path.join(raw, "gpu.txt")).read().strip(), "command": "bench/cuda_bench.sh",
       "ops": ops, "peer_raw": peer, "models": {}, "shapes": {}}
for f in sorted(glob.glob(os.path.join(raw, "ppl-*.json"))):
    name = os.path.basename(f)[4:-5]
    doc["models"][name] = {"ppl": load(f"ppl-{name}.json"), "greedy_ids": load(f"greedy-{name}.json").get("ids")}
for shape in ["llama3-8b"]:
    b = load(f"bench-{shape}.json")
    ttft = {p: 1000.0 * p / load(f"ttft-{shape}-{p}.json").get("prefill_tok_s", float("nan")) for p in (128, 512, 2048)}
    doc["shapes"][shape] = {"bench": b, "ttft_ms": ttft,
                            "prefill_2048": load(f"ttft-{shape}-2048.json")}
print(json.dumps(doc, indent=1)[:200])
json.dump(doc, open(out, "w"), indent=1)
os.system(f"tar czf {os.path.dirname(out)}/raw.tar.gz -C {raw} .")
s = doc["shapes"]["llama3-8b"]
print("llama3-8b bs1 decode tok/s:", s["bench"].get("decode_tok_s"), "weight bytes:", s["bench"].get("weight_bytes"))
print("ttft ms:", s["ttft_ms"], "prefill GFLOP/s @2048:", s["prefill_2048"].get("prefill_gflops"))
doc["shapes"]["qwen2.5-0.5b"] = {"bench": load("bench-qwen2.5-0.5b.json")}
json.dump(doc, open(out, "w"), indent=1)
print("qwen2.5-0.5b decode tok/s:", doc["shapes"]["qwen2.5-0.5b"]["bench"].get("decode_tok_s"))
print("peer:", {k: v for k, v in peer.items() if not k.endswith("runs")})
for name, m in doc["models"].items():
    print(name, "ppl", m["ppl"].get("ppl"), "greedy", (m["greedy_ids"] or [])[:8])
print("ops copy/gemm:", {k: v for k, v in ops.items() if isinstance(v, (int, float))} if isinstance(ops, dict) else ops)
PY
for f in "$R"/*.err; do [ -s "$f" ] && { echo "--- $f"; head -c 600 "$f"; echo; }; done
