"""Peer for bench/cuda_bench.sh: Hugging Face transformers on the very same weights, batch-1
greedy decode, eager and with a static cache + torch.compile. Prints one JSON object."""
import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM


def decode_tok_s(model, prompt_len, new_tokens, **generate_args):
    ids = torch.randint(100, 1000, (1, prompt_len), device="cuda")
    # Warm-up (and, for torch.compile, compilation) outside the timed runs.
    model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False, **generate_args)
    runs = []
    for _ in range(1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, **generate_args)
        torch.cuda.synchronize()
        runs.append(new_tokens / (time.perf_counter() - t0))
    return sorted(runs)[len(runs) // 2], runs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--prompt", type=int, default=16)
    p.add_argument("--new", type=int, default=256)
    p.add_argument("--skip-compile", action="store_true")
    a = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16).cuda().eval()
    model.generation_config.pad_token_id = model.generation_config.eos_token_id
    out = {"transformers_eager": None, "transformers_static_compile": None}
    with torch.inference_mode():
        out["transformers_eager"], out["eager_runs"] = decode_tok_s(model, a.prompt, a.new)
        print(json.dumps(out), flush=True)  # partial result first: compilation may run out of time
        if not a.skip_compile:
            try:
                # mode="max-autotune-no-cudagraphs" spent the whole time budget autotuning here; the
                # default mode compiles in about a minute.
                model.forward = torch.compile(model.forward, fullgraph=True)
                out["transformers_static_compile"], out["compile_runs"] = decode_tok_s(
                    model, a.prompt, a.new, cache_implementation="static")
            except Exception as e:  # report, do not hide: the peer number is then missing
                out["compile_error"] = repr(e)[:500]
    out["peak_gpu_memory_bytes"] = torch.cuda.max_memory_allocated()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
