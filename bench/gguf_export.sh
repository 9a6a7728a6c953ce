#!/usr/bin/env bash
# Issue 26, GGUF: `brisk export --format gguf` of the shared models (../shared) at every type it
# writes, and of brisk's own w8 / w4 models (--dtype auto), each read back by brisk: file size and
# perplexity on sotu-test (512-token windows, the `brisk perplexity` protocol) against the source
# model measured in the same run. GGML_CHECK=BIN (optional): a program that decodes every tensor of
# a GGUF file with ggml's own reader and type traits (args: FILE OUT, records of
# u32 name length, name, i64 count, count floats); its values are compared with
# tests/gguf_reader.py's decode of the same file (max abs difference per file).
# Writes $OUT/gguf-export.json.   bench/gguf_export.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BRISK:-$ROOT/build/tools/brisk/brisk}
SHARED=${SHARED:-$ROOT/../shared}
OUT=${OUT:-/tmp/gguf-export}
mkdir -p "$OUT"
rm -rf "$OUT"/work && mkdir -p "$OUT"/work
python3 - "$B" "$SHARED" "$OUT" "${GGML_CHECK:-}" "$ROOT/tests" <<'PY'
import json, os, platform, struct, subprocess, sys
B, SHARED, OUT, GGML, TESTS = sys.argv[1:6]
sys.path.insert(0, TESTS)
import gguf_reader
TEXT = os.path.join(SHARED, "data", "text", "sotu-test.txt")
WORK = os.path.join(OUT, "work")

def run(*args):
    return json.loads(subprocess.run([B, *args, "--json"], capture_output=True, text=True, check=True).stdout)

def ppl(model):
    return run("perplexity", "-m", model, "-f", TEXT, "--ctx", "512", "-t", "2")["ppl"]

def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path) if f.endswith(".safetensors"))

def ggml_check(path):
    """Largest |ggml decode - tests/gguf_reader.py decode| over every tensor of the file."""
    if not GGML:
        return None
    dump = path + ".ggml"
    subprocess.run([GGML, path, dump], check=True, capture_output=True)
    ours, worst, data, pos = gguf_reader.GgufFile(path), 0.0, open(dump, "rb").read(), 0
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos); pos += 4
        name = data[pos:pos + n].decode(); pos += n
        (count,) = struct.unpack_from("<q", data, pos); pos += 8
        theirs = struct.unpack_from(f"<{count}f", data, pos); pos += 4 * count
        mine = ours.values(name)
        worst = max(worst, max(abs(a - b) for a, b in zip(theirs, mine)))
    os.remove(dump)
    return worst

results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} vCPU (this session's CI-class VM)",
           "protocol": "brisk perplexity on all of sotu-test, 512-token windows; sizes are whole files", "models": {}}
for model in ("sotu-llama", "sotu-qwen2"):
    src = os.path.join(SHARED, "models", model)
    base = ppl(src)
    entry = {"source_bytes": folder_bytes(src), "source_ppl": base, "types": {}}
    for kind in ("f32", "f16", "bf16", "q8_0", "q6_k", "q4_k", "q4_0"):
        out = os.path.join(WORK, f"{model}-{kind}.gguf")
        rep = run("export", "-m", src, "-o", out, "--dtype", kind)
        p = ppl(out)
        entry["types"][kind] = {"bytes": rep["bytes"], "ppl": p, "ppl_vs_source": p / base,
                                "tensors_by_type": rep["tensors_by_type"], "ggml_max_abs_diff": ggml_check(out)}
        print(model, kind, rep["bytes"], round(p, 4), flush=True)
    for scheme in ("w8", "w4"):
        q = os.path.join(WORK, f"{model}-{scheme}")
        extra = ["--group", "128"] if scheme == "w4" else []
        made = subprocess.run([B, "quantize", "-m", src, "-o", q, "--scheme", scheme, *extra], capture_output=True, text=True)
        if made.returncode != 0:  # sotu-qwen2's 704-wide MLP takes no 128-value groups
            entry["types"][f"brisk-{scheme}"] = {"error": made.stderr.strip().splitlines()[-1]}
            continue
        out = q + ".gguf"
        rep = run("export", "-m", q, "-o", out)
        pq, pg = ppl(q), ppl(out)
        entry["types"][f"brisk-{scheme}"] = {"brisk_bytes": folder_bytes(q), "brisk_ppl": pq, "gguf_type": rep["dtype"],
                                             "bytes": rep["bytes"], "ppl": pg, "ppl_vs_brisk": pg / pq,
                                             "tensors_by_type": rep["tensors_by_type"],
                                             "ggml_max_abs_diff": ggml_check(out)}
        print(model, scheme, rep["dtype"], round(pq, 4), round(pg, 4), flush=True)
    results["models"][model] = entry
json.dump(results, open(os.path.join(OUT, "gguf-export.json"), "w"), indent=1)
print(os.path.join(OUT, "gguf-export.json"))
PY
