#!/usr/bin/env python3
"""Decode speed with and without a grammar mask (what response_format json_schema, grammar and
forced tool calls run), alternating plain / constrained on one machine; medians of the pairs.

  bench/grammar_bench.py [--device cuda] [--batch 64] [--pairs 6] [--out bench/results/grammar-LABEL.json]

warm: `brisk bench` decodes greedily within the schema's mask (a sequence that completes the JSON
starts over), after a warm-up repetition: the steady state of a server answering many requests
with one schema (masks are cached per grammar). cold: a fresh `brisk generate --json-schema` per
run, every parse state's mask computed as the output first reaches it (a new schema's first
request). The plain side is plain greedy decoding (argmax on the device, no mask).
"""
import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def machine(device):
    info = {"host": socket.gethostname(), "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if device == "cuda":
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
        info["gpu"] = gpu.stdout.strip()
    return info


def summary(plain, constrained):
    p, c = statistics.median(plain), statistics.median(constrained)
    return {"plain_tok_s": p, "constrained_tok_s": c, "cost_pct": 100.0 * (1.0 - c / p),
            "plain_runs": plain, "constrained_runs": constrained}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brisk", default=os.path.join(ROOT, "build/tools/brisk/brisk"))
    ap.add_argument("--model", default=os.path.join(ROOT, "../shared/models/sotu-llama"))
    ap.add_argument("--schema", default=os.path.join(ROOT, "bench/grammar/speech.schema.json"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: brisk's default)")
    ap.add_argument("--batch", type=int, default=0, help="also time N sequences decoding together")
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--cold-runs", type=int, default=4, help="fresh-process generate pairs (0: skip)")
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    common = ["-m", args.model, "--device", args.device] + (["-t", str(args.threads)] if args.threads else [])
    bench = [args.brisk, "bench", *common, "-p", "64", "-n", str(args.new_tokens), "-r", "3", "--no-limits", "--json"]
    if args.batch:
        bench += ["--batch", str(args.batch)]
    constrained = ["--json-schema", args.schema]
    runs = {"bs1": ([], []), f"batch{args.batch}": ([], [])}
    for pair in range(args.pairs):
        order = [False, True] if pair % 2 == 0 else [True, False]  # alternate which side goes first
        for with_grammar in order:
            r = run_json(bench + (constrained if with_grammar else []))
            runs["bs1"][with_grammar].append(r["decode_tok_s"])
            if args.batch:
                runs[f"batch{args.batch}"][with_grammar].append(r["batch_tok_s"][str(args.batch)])
            print(f"pair {pair} {'constrained' if with_grammar else 'plain'}: bs1 {r['decode_tok_s']:.0f} tok/s"
                  + (f", batch {args.batch} {r['batch_tok_s'][str(args.batch)]:.0f}" if args.batch else ""),
                  file=sys.stderr)
    result = {"machine": machine(args.device), "model": os.path.basename(os.path.normpath(args.model)),
              "device": args.device, "schema": os.path.relpath(args.schema, ROOT), "pairs": args.pairs,
              "command": " ".join(sys.argv), "warm_bs1": summary(*runs["bs1"])}
    if args.batch:
        result[f"warm_batch{args.batch}"] = summary(*runs[f"batch{args.batch}"])
    if args.cold_runs:
        gen = [args.brisk, "generate", *common, "-p", "The President said", "-n", "200", "--temp", "0", "--json"]
        cold = ([], [])
        for pair in range(args.cold_runs):
            for with_grammar in ([False, True] if pair % 2 == 0 else [True, False]):
                r = run_json(gen + (constrained if with_grammar else ["--ignore-eos"]))
                cold[with_grammar].append(r["decode_tok_s"])
        result["cold_generate"] = summary(*cold)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
