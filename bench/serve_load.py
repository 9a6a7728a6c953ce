#!/usr/bin/env python3
"""Load generator for an OpenAI-compatible /v1/completions endpoint (python3 standard library).

Open loop: requests arrive as a Poisson process at --rate per second (inf: all at once), at most
--concurrency in flight. Each prompt is --prompt-len token ids (uniform in a range; ids sent as a
list so lengths are exact on any tokenizer) and asks for --output-len tokens with ignore_eos, so
every request does exactly the work it drew. Streams every response and reports JSON: req/s,
output tok/s, time to first token and inter-token latency p50/p99 (from the client's clock).

  bench/serve_load.py --url http://127.0.0.1:8080 --requests 200 --rate 20 --concurrency 64
"""
import argparse
import http.client
import json
import math
import random
import sys
import threading
import time
import urllib.parse


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def one_request(url, body, api_key, timeout):
    """Streams one completion; returns per-request timings or an error string."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    start = time.perf_counter()
    chunk_times = []
    usage = None
    try:
        conn.request("POST", "/v1/completions", json.dumps(body), headers)
        resp = conn.getresponse()
        if resp.status != 200:
            return {"error": f"HTTP {resp.status}: {resp.read()[:200]!r}"}
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data: "):
                continue
            payload = line[6:]
            if payload == b"[DONE]":
                break
            chunk = json.loads(payload)
            if "error" in chunk:
                return {"error": chunk["error"].get("message", "error event")}
            if chunk.get("usage"):
                usage = chunk["usage"]
            if any(c.get("text") for c in chunk.get("choices", [])):
                chunk_times.append(time.perf_counter())
    except (OSError, http.client.HTTPException, ValueError) as e:
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        conn.close()
    end = time.perf_counter()
    if not chunk_times or usage is None:
        return {"error": "no tokens or no usage in the stream"}
    tokens = usage["completion_tokens"]
    gaps = [b - a for a, b in zip(chunk_times, chunk_times[1:])]
    # A chunk may carry several tokens; spread its gap over them.
    per_token = (chunk_times[-1] - chunk_times[0]) / (tokens - 1) if tokens > 1 else None
    return {"ttft": chunk_times[0] - start, "e2e": end - start, "tokens": tokens,
            "prompt_tokens": usage["prompt_tokens"], "gaps": gaps, "itl_mean": per_token}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--rate", type=float, default=math.inf, help="mean arrivals per second (inf: all at once)")
    ap.add_argument("--concurrency", type=int, default=64, help="most requests in flight")
    ap.add_argument("--prompt-len", type=int, nargs=2, default=[32, 128], metavar=("MIN", "MAX"))
    ap.add_argument("--output-len", type=int, nargs=2, default=[32, 64], metavar=("MIN", "MAX"))
    ap.add_argument("--vocab", type=int, default=8000, help="prompt ids are drawn from [10, VOCAB)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    plans = []
    t = 0.0
    for _ in range(args.requests):
        if math.isfinite(args.rate):
            t += rng.expovariate(args.rate)
        body = {"prompt": [rng.randrange(10, args.vocab) for _ in range(rng.randint(*args.prompt_len))],
                "max_tokens": rng.randint(*args.output_len), "temperature": 0, "ignore_eos": True,
                "stream": True, "stream_options": {"include_usage": True}}
        if args.model:
            body["model"] = args.model
        plans.append((t, body))

    results = [None] * len(plans)
    slots = threading.Semaphore(args.concurrency)
    threads = []

    def run(i, body):
        try:
            results[i] = one_request(args.url, body, args.api_key, args.timeout)
        finally:
            slots.release()

    begin = time.perf_counter()
    for i, (arrival, body) in enumerate(plans):
        delay = begin + arrival - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        slots.acquire()
        th = threading.Thread(target=run, args=(i, body), daemon=True)
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    duration = time.perf_counter() - begin

    ok = [r for r in results if r and "error" not in r]
    errors = [r["error"] for r in results if r and "error" in r]
    gaps = [g for r in ok for g in r["gaps"]]
    itl_means = [r["itl_mean"] for r in ok if r["itl_mean"] is not None]
    out_tokens = sum(r["tokens"] for r in ok)

    def ms(v):
        return None if v is None else round(1000 * v, 3)

    report = {
        "config": {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in vars(args).items()
                   if k != "api_key"},
        "requests": len(plans), "completed": len(ok), "errors": len(errors), "error_samples": errors[:5],
        "duration_s": round(duration, 3),
        "req_per_s": round(len(ok) / duration, 3),
        "output_tok_per_s": round(out_tokens / duration, 2),
        "prompt_tokens": sum(r["prompt_tokens"] for r in ok), "output_tokens": out_tokens,
        "ttft_ms": {"p50": ms(percentile([r["ttft"] for r in ok], 50)), "p99": ms(percentile([r["ttft"] for r in ok], 99))},
        "itl_ms": {"p50": ms(percentile(gaps, 50)), "p99": ms(percentile(gaps, 99)),
                   "mean_per_request_p50": ms(percentile(itl_means, 50))},
        "e2e_ms": {"p50": ms(percentile([r["e2e"] for r in ok], 50)), "p99": ms(percentile([r["e2e"] for r in ok], 99))},
    }
    json.dump(report, sys.stdout)
    print()
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
