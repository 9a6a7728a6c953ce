#!/usr/bin/env python3
"""Holds many streams and idle connections against one `brisk serve` (python3 standard library,
asyncio): the HTTP layer's benchmark (issue 18, section 3).

1. Expected texts: each distinct prompt once, non-streaming, greedy.
2. --idle keep-alive connections each make one GET /health and stay open; the server's RSS is read
   before and after (memory per idle connection).
3. /health latency from a fresh connection while they are open.
4. --streams streaming completions at once (greedy, ignore_eos, --max-tokens each), while /health
   is probed every 100 ms. Each stream's text must equal its prompt's expected text.
Reports JSON on stdout: response-header and first-token latency percentiles, how many requests
got their response headers only after some other stream had finished (waited for a whole
stream), health latencies, RSS.

  bench/http_load.py --url http://127.0.0.1:8080 --pid PID --streams 1000 --idle 200
"""
import argparse
import asyncio
import json
import time
import urllib.parse

from serve_load import percentile  # bench/serve_load.py: the one percentile definition

PROMPTS = ["The Congress", "Our economy", "The State of the Union", "Tonight", "We the people",
           "My fellow Americans", "The budget", "Our nation", "In the year ahead", "The world"]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def request_bytes(host, path, body=None):
    if body is None:
        return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 1"):  # interim responses
        head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return status, headers


async def read_body(reader, headers):
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    body = b""
    while True:  # chunked
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return body
        body += chunk[:-2]


async def simple(host, port, path, body=None):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(request_bytes(host, path, body))
    await writer.drain()
    status, headers = await read_head(reader)
    data = await read_body(reader, headers)
    writer.close()
    return status, data


async def health_latency(host, port):
    start = time.perf_counter()
    status, _ = await simple(host, port, "/health")
    return time.perf_counter() - start if status == 200 else None


async def stream(host, port, prompt, max_tokens, t0):
    out = {"prompt": prompt, "ok": False}
    try:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        writer.write(request_bytes(host, "/v1/completions", {"prompt": prompt, "max_tokens": max_tokens,
                                                             "temperature": 0, "ignore_eos": True, "stream": True}))
        await writer.drain()
        status, headers = await read_head(reader)
        out["headers_s"] = time.perf_counter() - t0
        if status != 200:
            out["error"] = f"status {status}"
            return out
        text, buffer = "", b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            buffer += chunk[:-2]
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                if not event.startswith(b"data: "):
                    continue  # an SSE comment
                payload = event[6:]
                if payload == b"[DONE]":
                    continue
                piece = json.loads(payload)["choices"][0]["text"]
                if piece and "first_token_s" not in out:
                    out["first_token_s"] = time.perf_counter() - t0
                text += piece
        out["done_s"] = time.perf_counter() - t0
        out["text"] = text
        out["ok"] = True
        writer.close()
    except Exception as e:  # counted as an incomplete stream
        out["error"] = repr(e)
    return out


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int, required=True, help="the server's process id (RSS)")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--idle", type=int, default=200)
    ap.add_argument("--max-tokens", type=int, default=24)
    args = ap.parse_args()
    parts = urllib.parse.urlsplit(args.url)
    host, port = parts.hostname, parts.port

    expected = {}
    for p in PROMPTS:
        status, data = await simple(host, port, "/v1/completions",
                                    {"prompt": p, "max_tokens": args.max_tokens, "temperature": 0, "ignore_eos": True})
        assert status == 200, data
        expected[p] = json.loads(data)["choices"][0]["text"]

    rss_before = rss_bytes(args.pid)
    idle = []
    for _ in range(args.idle):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request_bytes(host, "/health"))
        await writer.drain()
        status, headers = await asyncio.wait_for(read_head(reader), 30)
        await read_body(reader, headers)
        idle.append(writer)
    await asyncio.sleep(0.5)
    rss_idle = rss_bytes(args.pid)
    health_idle = [await health_latency(host, port) for _ in range(20)]

    health_load = []
    stop = asyncio.Event()

    async def prober():
        while not stop.is_set():
            try:
                health_load.append(await asyncio.wait_for(health_latency(host, port), 60))
            except asyncio.TimeoutError:
                health_load.append(60.0)
            await asyncio.sleep(0.1)

    probe_task = asyncio.create_task(prober())
    t0 = time.perf_counter()
    results = await asyncio.gather(*[stream(host, port, PROMPTS[i % len(PROMPTS)], args.max_tokens, t0)
                                     for i in range(args.streams)])
    wall = time.perf_counter() - t0
    stop.set()
    await probe_task
    rss_load_end = rss_bytes(args.pid)
    for w in idle:
        w.close()

    done = [r for r in results if r["ok"]]
    exact = [r for r in done if r["text"] == expected[r["prompt"]]]
    first_done = min((r["done_s"] for r in done), default=None)
    waited = sum(1 for r in results if "headers_s" in r and first_done is not None and r["headers_s"] > first_done)
    summary = lambda xs: {"p50": percentile(xs, 50), "p90": percentile(xs, 90), "p99": percentile(xs, 99),
                          "max": max(xs) if xs else None}
    print(json.dumps({
        "streams": args.streams, "idle_connections": args.idle, "max_tokens": args.max_tokens,
        "completed": len(done), "exact_text": len(exact),
        "errors": sorted({r.get("error") for r in results if not r["ok"]} - {None})[:5],
        "wall_s": wall,
        "output_tok_s": len(done) * args.max_tokens / wall,
        "headers_s": summary([r["headers_s"] for r in results if "headers_s" in r]),
        "ttft_s": summary([r["first_token_s"] for r in done if "first_token_s" in r]),
        "stream_s": summary([r["done_s"] for r in done]),
        "first_stream_done_s": first_done,
        "waited_for_a_whole_stream": waited,
        "health_idle_s": summary([h for h in health_idle if h is not None]),
        "health_under_load_s": summary(health_load),
        "rss_bytes": {"before_idle": rss_before, "with_idle": rss_idle, "after_load": rss_load_end},
        "rss_per_idle_connection_bytes": (rss_idle - rss_before) / max(args.idle, 1),
    }))


if __name__ == "__main__":
    asyncio.run(main())
