#!/usr/bin/env bash
# Issue 25 on the CPU: speculative decoding on sotu-llama (../shared) against plain decoding of the
# same model in the same run, alternating rounds, medians. Output is identical either way (tested),
# so only tok/s and acceptance are compared.
#   bs1 (`brisk generate --temp 0 --json`), two workloads of 5 prompts each from sotu-test:
#     continue   150 words of a speech, continue 128 tokens;
#     summarize  a 400-word passage, then "To summarize the above:", 128 tokens (much of it copies);
#   sources: plain, --lookup 3, --draft sotu-qwen2 (4 layers, hidden 256, same tokenizer, trained on
#   the same corpus; not distilled from sotu-llama).
#   batch $BATCHES (default 2 4 8 32 64; `brisk serve --lookup 3` and `--draft sotu-qwen2`, each with
#   --spec-max-batch 64, vs plain serve): that many summarize requests at once, greedy, 96 tokens
#   each; output tok/s of the whole batch.
#   FAST=1: every run with --bf16-fast (bf16 dot products; the CPU's decode and checking passes both).
# Writes $OUT/spec-cpu.json.   ROUNDS=3 bench/spec_cpu.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BRISK:-$ROOT/build/tools/brisk/brisk}
SHARED=${SHARED:-$ROOT/../shared}
OUT=${OUT:-/tmp/spec-cpu}
ROUNDS=${ROUNDS:-3}
BATCHES=${BATCHES:-2 4 8 32 64}
BS1=${BS1:-1}  # 0: only the batches
FAST=${FAST:-0}
mkdir -p "$OUT"
python3 - "$B" "$SHARED" "$OUT" "$ROUNDS" "$BATCHES" "$BS1" "$FAST" <<'PY'
import json, os, re, statistics, subprocess, sys, threading, time, urllib.request
B, SHARED, OUT, ROUNDS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
BATCHES, BS1 = [int(b) for b in sys.argv[5].split()], sys.argv[6] == "1"
MATH = ["--bf16-fast"] if sys.argv[7] == "1" else []
M, Q = os.path.join(SHARED, "models", "sotu-llama"), os.path.join(SHARED, "models", "sotu-qwen2")
words = open(os.path.join(SHARED, "data", "text", "sotu-test.txt"), encoding="utf-8").read().split()
workloads = {
    "continue": [" ".join(words[i * 3000:i * 3000 + 150]) for i in range(5)],
    "summarize": [" ".join(words[i * 3000:i * 3000 + 400]) + "\n\nTo summarize the above:" for i in range(5)],
}
# --spec-off never: speculation itself at every step (generate's default would pause it where slower).
sources = {"plain": [], "lookup": ["--lookup", "3", "--spec-off", "never"],
           "draft": ["--draft", Q, "--draft-max", "4", "--spec-off", "never"]}

def generate(prompt, extra):
    out = subprocess.run([B, "generate", "-m", M, "-p", prompt, "-n", "128", "--temp", "0", "--ignore-eos",
                          "-t", "2", "--json", *MATH, *extra], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)

bs1 = {w: {s: [] for s in sources} for w in workloads}
accept = {w: {s: [] for s in sources if s != "plain"} for w in workloads}
for r in range(ROUNDS if BS1 else 0):
    for w, prompts in workloads.items():
        for s, extra in sources.items():
            toks, secs = 0, 0.0
            for p in prompts:
                d = generate(p, extra)
                toks += d["new_tokens"] - 1
                secs += (d["new_tokens"] - 1) / d["decode_tok_s"]
                if s != "plain":
                    accept[w][s].append(d["speculation"]["tokens_per_step"])
            bs1[w][s].append(toks / secs)

def serve_batch(extra, n):
    proc = subprocess.Popen([B, "serve", "-m", M, "--port", "0", "-t", "2", "--ctx", "1024", "--max-batch", "64", *MATH, *extra],
                            stderr=subprocess.PIPE, text=True)
    url = None
    for line in proc.stderr:
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            url = m.group(1)
            break
    prompts = [workloads["summarize"][i % 5] + " " * (i // 5) for i in range(n)]
    done = [0] * n
    def ask(i):
        body = json.dumps({"prompt": prompts[i], "max_tokens": 96, "temperature": 0, "ignore_eos": True}).encode()
        req = urllib.request.Request(url + "/v1/completions", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as resp:
            done[i] = json.load(resp)["usage"]["completion_tokens"]
    t0 = time.time()
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(n)]
    for t in threads: t.start()
    for t in threads: t.join()
    wall = time.time() - t0
    metrics = urllib.request.urlopen(url + "/metrics").read().decode()
    get = lambda name: float(re.search(rf"^{name} (\S+)$", metrics, re.M).group(1))
    proc.terminate(); proc.wait()
    return sum(done) / wall, get("brisk_speculated_tokens_total"), get("brisk_speculated_tokens_accepted_total")

batch = {}
served = {"lookup": ["--lookup", "3"], "draft": ["--draft", Q, "--draft-max", "4"]}
for n in BATCHES:
    plain, spec, rates = [], {s: [] for s in served}, {s: [] for s in served}
    for r in range(ROUNDS):
        plain.append(serve_batch([], n)[0])
        for s, extra in served.items():
            tok_s, proposed, accepted = serve_batch([*extra, "--spec-max-batch", "64"], n)
            spec[s].append(tok_s)
            rates[s].append(accepted / proposed if proposed else 0)
    batch[n] = {"plain_tok_s": statistics.median(plain)}
    for s in served:
        batch[n][f"{s}_tok_s"] = statistics.median(spec[s])
        batch[n][f"{s}_speedup"] = statistics.median(spec[s]) / statistics.median(plain)
        batch[n][f"{s}_acceptance_rate"] = statistics.median(rates[s])

med = statistics.median
cpu = open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": \t")
if not BS1:
    print(json.dumps(batch, indent=1))
    sys.exit(0)
result = {
    "machine": f"{cpu}, {os.cpu_count()} threads", "command": "bench/spec_cpu.sh", "rounds": ROUNDS,
    "bf16_math": "bf16_dot (--bf16-fast)" if MATH else "exact_fp32",
    "target": "sotu-llama (6 layers, hidden 384, bf16 weights)", "target_params": 12586368,
    "bs1_plain_tok_s": {w: med(bs1[w]["plain"]) for w in workloads},
    "bs1_tok_s": {w: {s: med(v) for s, v in bs1[w].items()} for w in workloads},
    "speedup": {s: {w: med(bs1[w][s]) / med(bs1[w]["plain"]) for w in workloads} for s in sources if s != "plain"},
    "acceptance": {s: {w: med(accept[w][s]) for w in workloads} for s in sources if s != "plain"},
    "acceptance_note": "mean tokens per target pass (accepted proposals + the model's own token)",
    "batch": batch,
}
result["bs1_speedup"] = max(v for s in result["speedup"].values() for v in s.values())
json.dump(result, open(os.path.join(OUT, "spec-cpu.json"), "w"), indent=1)
print(json.dumps({k: result[k] for k in ("bs1_plain_tok_s", "speedup", "acceptance", "batch")}, indent=1))
PY
