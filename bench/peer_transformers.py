"""Peer for bench/cuda_bench.sh: Hugging Face transformers on the very same weights, batch-1
greedy decode, eager or with a static cache + torch.compile. Prints one JSON object per finished
measurement (the last line is the full result), so a caller with a time limit keeps what finished.

--variant eager                 model.generate() as loaded
--variant compile               static cache, model.forward compiled with --compile-mode and
                                fullgraph=True; transformers' own automatic compilation is turned
                                off (generation_config.disable_compile) so only ours runs
"""
import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM


def decode_tok_s(model, prompt_len, new_tokens, **generate_args):
    ids = torch.randint(100, 1000, (1, prompt_len), device="cuda")
    # Warm-up (and, for torch.compile, compilation of the prefill and decode shapes) outside the
    # timed runs; the same lengths as the timed run so nothing recompiles there.
    t0 = time.perf_counter()
    model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, **generate_args)
    warmup_s = time.perf_counter() - t0
    runs = []
    for _ in range(3):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, **generate_args)
        torch.cuda.synchronize()
        runs.append(new_tokens / (time.perf_counter() - t0))
    return sorted(runs)[len(runs) // 2], runs, warmup_s


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--prompt", type=int, default=16)
    p.add_argument("--new", type=int, default=256)
    p.add_argument("--variant", choices=["eager", "compile"], default="eager")
    p.add_argument("--compile-mode", default="max-autotune-no-cudagraphs")
    a = p.parse_args()
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16).cuda().eval()
    model.generation_config.pad_token_id = model.generation_config.eos_token_id
    out = {"variant": a.variant, "torch": torch.__version__}
    import transformers
    out["transformers"] = transformers.__version__
    with torch.inference_mode():
        if a.variant == "eager":
            out["tok_s"], out["runs"], out["warmup_s"] = decode_tok_s(model, a.prompt, a.new)
        else:
            out["compile_mode"] = a.compile_mode
            model.generation_config.disable_compile = True
            model.forward = torch.compile(model.forward, mode=a.compile_mode, fullgraph=True)
            try:
                out["tok_s"], out["runs"], out["warmup_s"] = decode_tok_s(
                    model, a.prompt, a.new, cache_implementation="static")
            except Exception as e:  # report, do not hide: the peer number is then missing
                out["error"] = repr(e)[:500]
    out["peak_gpu_memory_bytes"] = torch.cuda.max_memory_allocated()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
