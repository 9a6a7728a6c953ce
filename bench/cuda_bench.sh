#!/usr/bin/env bash
# GPU benchmark and checks in one device call: build (scripts/gpu_check.sh: GPU op, golden and
# runtime tests), then on the shared models --device cuda perplexity and greedy parity, then a
# synthetic llama3-8b (bf16): batch-1 decode (16-token prompt, 256 new) with and without recorded
# CUDA graphs, batched decode at 1..256 sequences, time to first token at 128/512/2048, the
# device's copy bandwidth and GEMM peak (bench/cuda_op_bench), and transformers on the same
# weights (bench/peer_transformers.py). Quantized llama3-8b decode is bench/quant_bench.sh's. Writes
# $OUT/cuda-decode.json (the shape of
# bench/results/cuda-decode-h100.json) and $OUT/raw.tar.gz (every log and raw JSON); prints a
# summary last. Models come from $MODELS (default .carry/models), text from .carry/text.
#   PARTS picks what runs (default all): check (GPU tests; without it only the build), models
#   (shared models' ppl and greedy ids), ops (cuda_op_bench), bf16 (llama3-8b bs1 with and without
#   graphs), batch, ttft, qwen (qwen2.5-0.5b bs1), peer, tiny (tinyllama-1.1b: bf16 and
#   TINY_SCHEMES="w8 w4 fp8 w8a8", bs1 and batch 64), grammar (a qwen2.5-0.5b shape with
#   sotu-llama's 8,192-token tokenizer: bs1 and batch-64 decode with and without a JSON-schema
#   mask, bench/grammar_bench.py -> $OUT/grammar-cuda.json). A full run does not fit one 10-minute
#   call; two calls (e.g. "check models ops bf16 batch ttft qwen" and "bf16 peer tiny") do, each
#   with its own same-run comparisons. BATCHES=1,8,... picks the batched sizes; PEER_TIMEOUT
#   limits the torch.compile variant.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/build-gpu/out}
MODELS=${MODELS:-$ROOT/.carry/models}
TEXT=${TEXT:-$ROOT/.carry/text/sotu-test.txt}
BATCHES=${BATCHES:-1,8,32,64,128,256}
PARTS=" ${PARTS:-check models ops bf16 batch ttft qwen peer tiny} "
want() { [[ "$PARTS" == *" $1 "* ]]; }
mkdir -p "$OUT"
# Raw files stay outside $OUT (the device tool returns at most 8 files) and travel as one tarball.
R=${RAW:-/tmp/brisk-bench-raw}
rm -rf "$R" && mkdir -p "$R/check"
if want check; then
  OUT="$R/check" BRISK_MODELS="$MODELS" "$ROOT/scripts/gpu_check.sh" --no-bench >"$R/gpu_check.txt" 2>&1
else
  OUT="$R/check" BRISK_MODELS="$MODELS" "$ROOT/scripts/gpu_check.sh" --build-only >"$R/gpu_check.txt" 2>&1
fi
tail -14 "$R/gpu_check.txt"
ninja -C "$ROOT/build-gpu" brisk cuda_op_bench >"$R/build-brisk.log" 2>&1 || { tail -20 "$R/build-brisk.log"; exit 1; }
B="$ROOT/build-gpu/tools/brisk/brisk"
# Shared libraries unpacked by gpu_check.sh from .debs/ on machines without the dev packages.
[ -d /tmp/brisk-sysroot ] && export LD_LIBRARY_PATH=/tmp/brisk-sysroot/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

if want models; then
  for m in "$MODELS"/*/; do
    name=$(basename "$m")
    "$B" perplexity -m "$m" -f "$TEXT" --ctx 512 --device cuda --json >"$R/ppl-$name.json" 2>"$R/ppl-$name.err"
    "$B" generate -m "$m" -p "The State of the Union is" -n 64 --temp 0 --ignore-eos --device cuda --json \
      >"$R/greedy-$name.json" 2>>"$R/ppl-$name.err"
  done
fi
want ops && timeout 120 "$ROOT/build-gpu/bench/cuda_op_bench" --json "$R/ops.json" >"$R/ops.log" 2>&1
synth() { [ -d /tmp/synth-$1 ] || "$B" synth --shape $1 --dtype bf16 -o /tmp/synth-$1 >/dev/null 2>"$R/synth-$1.err"; }
L=/tmp/synth-llama3-8b
if want grammar; then
  # A 152k-logit model (qwen2.5-0.5b shape) with sotu-llama's 8,192-token tokenizer: the masks
  # are real trie walks, and each row's mask words as wide as a large vocabulary's.
  G=/tmp/synth-qwen-sotu-vocab
  [ -d $G ] || { "$B" synth --shape qwen2.5-0.5b --dtype bf16 -o $G >/dev/null 2>"$R/synth-grammar.err" &&
                 rm -f $G/tokenizer.json $G/tokenizer_config.json &&
                 cp "$MODELS/sotu-llama/tokenizer.json" "$MODELS/sotu-llama/tokenizer_config.json" $G/; }
  timeout 300 python3 "$ROOT/bench/grammar_bench.py" --brisk "$B" --model $G --device cuda --batch 64 \
    --pairs ${GRAMMAR_PAIRS:-4} --cold-runs 1 --new-tokens 128 --out "$OUT/grammar-cuda.json" 2>"$R/grammar.err" |
    tail -3
fi
if want bf16 || want batch || want ttft || want peer; then synth llama3-8b; fi
if want bf16; then
  "$B" bench -m $L --device cuda -p 16 -n 256 -r 3 --json >"$R/bench-llama3-8b.json" 2>"$R/bench-llama3-8b.err"
  "$B" bench -m $L --device cuda -p 16 -n 256 -r 3 --no-graphs --json \
    >"$R/bench-llama3-8b-nographs.json" 2>>"$R/bench-llama3-8b.err"
fi
want batch && "$B" bench -m $L --device cuda -p 16 -n 256 -r 1 --batch "$BATCHES" --json \
  >"$R/batch-llama3-8b.json" 2>>"$R/bench-llama3-8b.err"
if want ttft; then
  for p in 128 512 2048; do
    "$B" bench -m $L --device cuda -p $p -n 1 -r 5 --json >"$R/ttft-llama3-8b-$p.json" 2>>"$R/bench-llama3-8b.err"
  done
fi
if want qwen; then
  synth qwen2.5-0.5b
  "$B" bench -m /tmp/synth-qwen2.5-0.5b --device cuda -p 16 -n 256 -r 3 --json >"$R/bench-qwen2.5-0.5b.json" \
    2>"$R/bench-qwen2.5-0.5b.err"
  "$B" bench -m /tmp/synth-qwen2.5-0.5b --device cuda -p 16 -n 256 -r 3 --no-graphs --json \
    >"$R/bench-qwen2.5-0.5b-nographs.json" 2>>"$R/bench-qwen2.5-0.5b.err"
fi
# The tinyllama-1.1b shape, bf16 and each of TINY_SCHEMES, bs1 and batch 64 (issue 4's second shape).
if want tiny; then
  synth tinyllama-1.1b
  T=/tmp/synth-tinyllama-1.1b
  for scheme in bf16 ${TINY_SCHEMES-w8 w4 fp8 w8a8}; do
    q=$T-$scheme
    [ $scheme = bf16 ] && q=$T
    [ -d $q ] || "$B" quantize -m $T -o $q --scheme $scheme -t 16 --json >/dev/null 2>"$R/tiny-$scheme.err"
    "$B" bench -m $q --device cuda -p 16 -n 256 -r 3 --batch 64 --json >"$R/tiny-$scheme.json" 2>>"$R/tiny-$scheme.err"
  done
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$R/gpu.txt"
if want peer; then
  # Each variant in its own process and time limit; torch.compile's autotuning alone took ~190 s.
  for variant in eager compile; do
    limit=$([ $variant = eager ] && echo 150 || echo "${PEER_TIMEOUT:-360}")
    LD_LIBRARY_PATH= timeout "$limit" python3 "$ROOT/bench/peer_transformers.py" --model /tmp/synth-llama3-8b \
      --prompt 16 --new 256 --variant $variant >"$R/peer-$variant.jsonl" 2>"$R/peer-$variant.err"
    tail -n 1 "$R/peer-$variant.jsonl" >"$R/peer-$variant.json"
  done
fi

python3 - "$R" "$OUT/cuda-decode.json" <<'PY'
import json, os, sys, time
raw, out = sys.argv[1], sys.argv[2]
def load(name):
    try:
        return json.load(open(os.path.join(raw, name)))
    except Exception as e:
        return {"error": repr(e)}
ops, eager, compiled = load("ops.json"), load("peer-eager.json"), load("peer-compile.json")
bench, nographs, batch = load("bench-llama3-8b.json"), load("bench-llama3-8b-nographs.json"), load("batch-llama3-8b.json")
copy = ops.get("copy_GBps") or float("nan")
weight_gb = bench.get("weight_bytes", 0) / 1e9
roofline = copy / weight_gb if weight_gb else float("nan")
bs1 = bench.get("decode_tok_s", float("nan"))
ttft = {str(p): 1000.0 * p / load(f"ttft-llama3-8b-{p}.json").get("prefill_tok_s", float("nan")) for p in (128, 512, 2048)}
prefill_tflops = load("ttft-llama3-8b-2048.json").get("prefill_gflops", float("nan")) / 1e3
gemm_peak = ops.get("gemm_peak_TFLOPs", float("nan"))
batch_tok_s = batch.get("batch_tok_s", {})
doc = {
    "machine": open(os.path.join(raw, "gpu.txt")).read().strip(),
    "date": time.strftime("%Y-%m-%d"),
    "command": "bench/cuda_bench.sh (one device call)",
    "model_shape": "llama3-8b (brisk synth --shape llama3-8b --dtype bf16)",
    "copy_GBps": copy,
    "weight_GB": weight_gb,
    "bs1_decode_tok_s": bs1,
    "bs1_decode_tok_s_runs": bench.get("decode_tok_s_runs"),
    "bs1_decode_tok_s_no_graphs": nographs.get("decode_tok_s"),
    "roofline_tok_s": roofline,
    "roofline_fraction": bs1 / roofline,
    "peer": {"name": "transformers + torch, same weights, bf16, generate() greedy, 16-token prompt, 256 new "
                     "(medians of 3 after a full-length warm-up)",
             # The faster of eager and static cache + torch.compile (null when neither finished).
             "bs1_decode_tok_s": max([v for v in (eager.get("tok_s"), compiled.get("tok_s"))
                                      if isinstance(v, (int, float))], default=None),
             "eager": eager, "static_cache_torch_compile": compiled},
    "ttft_ms": ttft,
    "prefill_tflops": prefill_tflops,
    "gemm_peak_tflops": gemm_peak,
    "prefill_peak_fraction": prefill_tflops / gemm_peak if gemm_peak == gemm_peak else None,
    "batch_tok_s": batch_tok_s,
    "batch_64_over_1": (batch_tok_s.get("64", 0) / batch_tok_s["1"]) if batch_tok_s.get("1") else None,
    "batch_note": "N sequences, each its own random 16-token prompt and block table, decode 256 steps together "
                  "(greedy ids chosen on the GPU, recorded CUDA graphs); generated tokens/s of all N",
    "peak_gpu_bytes": batch.get("gpu_bytes_in_use"),
    "peak_gpu_bytes_note": "device memory in use (total - free) after the largest batch: weights, KV cache for "
                           "max(N) x 272 positions (fp32), activations, graphs",
    "qwen2.5-0.5b": {"bs1_decode_tok_s": load("bench-qwen2.5-0.5b.json").get("decode_tok_s"),
                     "bs1_decode_tok_s_no_graphs": load("bench-qwen2.5-0.5b-nographs.json").get("decode_tok_s"),
                     "weight_bytes": load("bench-qwen2.5-0.5b.json").get("weight_bytes")},
    "shared_models_on_gpu": {},
}
# tinyllama-1.1b: every scheme against bf16 in the same call.
tiny = {f[5:-5]: load(f) for f in sorted(os.listdir(raw)) if f.startswith("tiny-") and f.endswith(".json")}
if tiny:
    base = tiny.get("bf16", {})
    doc["tinyllama-1.1b"] = {
        scheme: {"bs1_decode_tok_s": t.get("decode_tok_s"), "weight_GB": t.get("weight_bytes", 0) / 1e9,
                 "roofline_fraction": t.get("decode_tok_s", 0) * t.get("weight_bytes", 0) / 1e9 / copy
                 if copy == copy else None,
                 "bs1_vs_bf16": t.get("decode_tok_s", 0) / base["decode_tok_s"] if base.get("decode_tok_s") else None,
                 "batch_64_tok_s": t.get("batch_tok_s", {}).get("64"),
                 "batch_64_vs_bf16": (t.get("batch_tok_s", {}).get("64") or 0) / base["batch_tok_s"]["64"]
                 if base.get("batch_tok_s", {}).get("64") else None}
        for scheme, t in tiny.items()}
    print("tinyllama-1.1b:", json.dumps(doc["tinyllama-1.1b"]))
for f in sorted(os.listdir(raw)):
    if f.startswith("ppl-") and f.endswith(".json"):
        name = f[4:-5]
        doc["shared_models_on_gpu"][name] = {"sotu_test_ppl": load(f).get("ppl"),
                                             "greedy_ids": load(f"greedy-{name}.json").get("ids")}
json.dump(doc, open(out, "w"), indent=1)
print("llama3-8b bs1 decode tok/s:", bs1, "(no graphs:", nographs.get("decode_tok_s"), ") roofline", roofline,
      "fraction", doc["roofline_fraction"])
print("batch tok/s:", batch_tok_s, "64/1:", doc["batch_64_over_1"], "gpu bytes:", doc["peak_gpu_bytes"])
print("ttft ms:", ttft, "prefill TFLOP/s @2048:", prefill_tflops, "of peak", gemm_peak)
print("qwen2.5-0.5b:", doc["qwen2.5-0.5b"])
print("peer:", doc["peer"])
for name, m in doc["shared_models_on_gpu"].items():
    print(name, "ppl", m["sotu_test_ppl"], "greedy", (m["greedy_ids"] or [])[:8])
PY
for f in "$R"/*.err; do [ -s "$f" ] && { echo "--- $f"; head -c 600 "$f"; echo; }; done
tar czf "$OUT/raw.tar.gz" -C "$R" .
