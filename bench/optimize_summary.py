#!/usr/bin/env python3
"""The committed summary of brisk optimize runs: per run its budget, base model, chosen recipe,
single-technique recipes and verified frontier points as measured, without the whole frontier
(thousands of points) or the per-group tables, which stay in the full records.

  bench/optimize_summary.py OUT.json --command CMD [--machine M] [--note N] [--attach KEY=FILE]
                            NAME=RECORD.json ...
--attach adds the JSON object on FILE's last line under KEY (the training run of the model searched).
"""
import argparse
import json
import os
import subprocess


def run_summary(r):
    c = r["chosen"]
    s = {
        "budget": r["budget"], "objective": r["objective"], "groups": len(r["groups"]),
        "frontier_points": len(r["frontier"]), "base": r["base"],
        "chosen": {"source": c["source"], "recipe": c["recipe"], "predicted_ppl": c["predicted_ppl"],
                   "measured": c["measured"]},
        "single_technique": {t["name"]: {"predicted_ppl": t["predicted_ppl"], "measured": t["measured"]}
                             for t in r["single_technique"]},
        "verified_frontier": [{"index": i, "predicted_ppl": p["predicted_ppl"], "measured": p["measured"]}
                              for i, p in enumerate(r["frontier"]) if "measured" in p],
        "rank_correlation": r["rank_correlation"], "seconds": r["seconds"],
        "speedup_vs_base": c["measured"]["decode_tok_s"] / r["base"]["decode_tok_s"],
        "size_vs_base": c["measured"]["bytes"] / r["base"]["bytes"]}
    if r.get("recovery"):
        s["recovery"] = r["recovery"]
        s["chosen"]["measured_before_recovery"] = c.get("measured_before_recovery")
    return s


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("runs", nargs="+", help="NAME=RECORD.json (brisk optimize --report files)")
    p.add_argument("--command", required=True)
    p.add_argument("--machine", help="default: this machine's CPU model and vCPU count")
    p.add_argument("--note")
    p.add_argument("--attach", action="append", default=[], help="KEY=FILE: FILE's last line, a JSON object")
    a = p.parse_args()
    machine = a.machine
    if not machine:
        cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
        machine = f"{cpu}, {os.cpu_count()} vCPU"
    summary = {"machine": machine, "command": a.command}
    if a.note:
        summary["note"] = a.note
    for item in a.attach:
        key, sep, path = item.partition("=")
        if not sep:
            p.error(f"--attach: expected KEY=FILE, got '{item}'")
        summary[key] = json.loads(open(path).read().strip().splitlines()[-1])
    summary["runs"] = {}
    for item in a.runs:
        name, sep, path = item.partition("=")
        if not sep:
            p.error(f"expected NAME=RECORD.json, got '{item}'")
        summary["runs"][name] = run_summary(json.load(open(path)))
    first = next(iter(summary["runs"].values()))
    summary["speedup_vs_base"] = first["speedup_vs_base"]
    json.dump(summary, open(a.out, "w"), indent=1)
    for k, v in summary["runs"].items():
        m = v["chosen"]["measured"]
        print(k, "chosen", v["chosen"]["source"], "ppl", round(m["ppl"], 3), "base", round(v["base"]["ppl"], 3),
              "tok/s", round(m["decode_tok_s"]), "base", round(v["base"]["decode_tok_s"]),
              "MB", round(m["bytes"] / 1e6, 2), "rank", v["rank_correlation"])


if __name__ == "__main__":
    main()
