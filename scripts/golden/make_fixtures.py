#!/usr/bin/env python3
"""Golden reference fixtures for brisk, computed with Hugging Face transformers / tokenizers.

Run on a machine with torch, transformers 5, tokenizers, sentencepiece and safetensors
(the GPU device machine; the tiny models run on CPU, the shared models on CUDA if present):

    python3 scripts/golden/make_fixtures.py --shared ../shared --out /tmp/fixtures

and copy <out>/{golden,tokenizer,reference} into tests/fixtures/. Layout written:

  golden/<variant>/          config.json, model.safetensors (fp32), logits.safetensors
  golden/<variant>-bf16/     same model with bf16 weights; logits in fp32 from those weights
  golden/index.json          what each variant exercises, plus a reload self-check
  tokenizer/...              see tokenizer_fixtures.py
  reference/shared-models.json  perplexity and greedy continuations of the shared models

Everything is fp32 with eager attention and TF32 off, so the numbers are a plain reference.
"""

import argparse
import copy
import datetime
import json
import math
import os
import platform
import sys
import traceback

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokenizer_fixtures import make_tokenizer_fixtures  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SEQ_LEN = 40  # tokens fed to each tiny model
WINDOW = 512  # perplexity window; positions 0..510 predict tokens 1..511
GREEDY_TOKENS = 64
PROMPTS = ["The State of the Union is", "Mr. Speaker, Mr. Vice President, members of Congress,"]
SHARED_MODELS = ["sotu-llama", "sotu-gpt2", "sotu-qwen2"]
EVAL_TEXTS = {"sotu-test": "sotu-test.txt", "wikitext2-test": "wikitext2-test.txt"}


def log(msg):
    print("[fixtures] " + msg, flush=True)


def no_tf32():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


def generated_by(device):
    import safetensors
    import sentencepiece
    import tokenizers
    import transformers
    return {
        "script": "scripts/golden/make_fixtures.py",
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "sentencepiece": sentencepiece.__version__,
        "safetensors": safetensors.__version__,
        "compute": "float32, attn_implementation=eager, TF32 off",
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


# ---------------------------------------------------------------------------------------------
# 1. Tiny random models
# ---------------------------------------------------------------------------------------------

def tiny_variants():
    """(name, config, note) for every tiny model. Sizes avoid powers of two where they can."""
    from transformers import GPT2Config, LlamaConfig, MistralConfig, Qwen2Config

    common = dict(vocab_size=320, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                  max_position_embeddings=128, rms_norm_eps=1e-5)

    def rope(theta, **scaling):
        return dict(rope_type=scaling.pop("rope_type", "default"), rope_theta=theta, **scaling)

    return [
        ("llama-gqa",
         LlamaConfig(**common, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                     rope_parameters=rope(25000.0)),
         "GQA 4/2, untied; config.json rewritten to old style (top-level rope_theta, rope_scaling null)"),
        ("llama3-rope",
         LlamaConfig(**common, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                     rope_parameters=rope(500000.0, rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                          high_freq_factor=4.0, original_max_position_embeddings=16)),
         "llama3 rope scaling (factor 8, low 1, high 4, original max pos 16), theta 5e5"),
        ("llama-mha-tied-headdim",
         LlamaConfig(**common, num_attention_heads=4, num_key_value_heads=4, head_dim=32,
                     tie_word_embeddings=True, rope_parameters=rope(10000.0)),
         "MHA 4/4, tied embeddings, head_dim 32 != hidden/heads"),
        ("llama-mqa-bias",
         LlamaConfig(**common, num_attention_heads=4, num_key_value_heads=1, attention_bias=True,
                     mlp_bias=True, tie_word_embeddings=False, rope_parameters=rope(10000.0)),
         "MQA 4/1, attention_bias and mlp_bias"),
        ("qwen2",
         Qwen2Config(**common, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                     use_sliding_window=False, rope_parameters=rope(1000000.0)),
         "Qwen2 4/2, tied, q/k/v biases"),
        ("mistral",
         MistralConfig(**common, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                       sliding_window=None, rope_parameters=rope(10000.0)),
         "Mistral 4/2, sliding_window null"),
        ("gpt2",
         GPT2Config(vocab_size=320, n_embd=64, n_head=4, n_layer=2, n_positions=128,
                    activation_function="gelu_new"),  # tied and layer_norm_epsilon 1e-5 by default
         "GPT-2, gelu_new, tied, learned positions, Conv1D [in, out] weights"),
    ]


def randomize(model, seed):
    """Overwrite every parameter so norms and biases are non-trivial and logits are not tiny."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied parameters appear once
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if p.ndim == 1 and name.endswith("bias"):
                p.copy_(0.05 * noise)
            elif p.ndim == 1:  # RMSNorm / LayerNorm gain
                p.copy_(1.0 + 0.1 * noise)
            elif any(k in name for k in ("embed_tokens", "wte", "wpe")):
                p.copy_(0.5 * noise)
            else:
                p.copy_(0.1 * noise)


def build_model(config):
    from transformers import AutoModelForCausalLM
    try:
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    except TypeError:  # older signature: set the attention backend on the config instead
        config._attn_implementation = "eager"
        model = AutoModelForCausalLM.from_config(config)
    return model.float().eval()


def forward_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids[None], use_cache=False).logits[0].float().contiguous()


def rewrite_old_style_rope(folder):
    """Llama-2-era config.json: rope_theta at the top level instead of rope_parameters."""
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    rope = cfg.pop("rope_parameters")
    assert rope.get("rope_type", "default") == "default", rope
    cfg["rope_theta"] = rope["rope_theta"]
    cfg["rope_scaling"] = None
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def save_variant(model, folder, ids, logits, old_style_rope):
    from safetensors.torch import save_file
    model.save_pretrained(folder)
    if old_style_rope:
        rewrite_old_style_rope(folder)
    save_file({"input_ids": ids.to(torch.int64).contiguous(), "logits": logits}, os.path.join(folder, "logits.safetensors"))


def reload_diff(folder, ids, logits):
    """Self-check: transformers reading the saved folder (fp32 compute) reproduces the logits."""
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    return float((forward_logits(m, ids) - logits).abs().max())


def save_with_bf16_twin(gdir, name, model, ids, note, seed, old_style):
    """golden/<name> (fp32) and golden/<name>-bf16 (weights rounded to bf16, logits computed in
    fp32 from the rounded values); returns the index entry with the reload self-checks."""
    logits = forward_logits(model, ids)
    folder = os.path.join(gdir, name)
    save_variant(model, folder, ids, logits, old_style)
    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    logits16 = forward_logits(rounded, ids)
    folder16 = os.path.join(gdir, name + "-bf16")
    save_variant(copy.deepcopy(rounded).to(torch.bfloat16), folder16, ids, logits16, old_style)
    return {
        "note": note,
        "class": type(model).__name__,
        "seed": seed,
        "logits_abs_max": float(logits.abs().max()),
        "logits_std": float(logits.std()),
        "bf16_vs_fp32_logits_max_diff": float((logits16 - logits).abs().max()),
        "reload_max_diff": reload_diff(folder, ids, logits),
        "reload_max_diff_bf16": reload_diff(folder16, ids, logits16),
    }


def make_tiny_models(out):
    gdir = os.path.join(out, "golden")
    index = {"generated_by": generated_by("cpu"), "seq_len": SEQ_LEN, "variants": {}}
    errors = []
    for k, (name, config, note) in enumerate(tiny_variants()):
        try:
            seed = 1000 + k
            torch.manual_seed(seed)
            model = build_model(config)
            randomize(model, seed)
            ids = torch.randint(0, config.vocab_size, (SEQ_LEN,), generator=torch.Generator().manual_seed(seed))
            old_style = name == "llama-gqa"

            entry = save_with_bf16_twin(gdir, name, model, ids, note, seed, old_style)
            index["variants"][name] = entry
            log("tiny %s: %s" % (name, json.dumps(entry)))
            if max(entry["reload_max_diff"], entry["reload_max_diff_bf16"]) > 1e-4:
                errors.append("%s: reloaded logits differ (%g / %g)" % (
                    name, entry["reload_max_diff"], entry["reload_max_diff_bf16"]))
        except Exception as e:
            traceback.print_exc()
            errors.append("tiny %s: %r" % (name, e))
    index["errors"] = errors
    with open(os.path.join(gdir, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    return errors


# ---------------------------------------------------------------------------------------------
# 3. Shared models: perplexity and greedy continuations
# ---------------------------------------------------------------------------------------------

def perplexity(model, ids, device, batch=8):
    """Non-overlapping WINDOW-token windows (last partial one dropped), NLL summed in float64."""
    n_windows = len(ids) // WINDOW
    data = torch.tensor(ids[: n_windows * WINDOW], dtype=torch.long).view(n_windows, WINDOW)
    window_nll = []
    with torch.no_grad():
        for start in range(0, n_windows, batch):
            x = data[start:start + batch].to(device)
            logits = model(input_ids=x, use_cache=False).logits.float()
            logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
            nll = -logp.gather(-1, x[:, 1:, None]).squeeze(-1)  # [b, WINDOW-1]
            window_nll.extend(nll.sum(dim=1).tolist())
    scored = n_windows * (WINDOW - 1)
    nll_sum = math.fsum(window_nll)
    return {
        "ppl": math.exp(nll_sum / scored),
        "tokens": len(ids),
        "windows": n_windows,
        "scored": scored,
        "nll_sum": nll_sum,
        "window_nll": window_nll,
    }


def greedy(model, tok, prompt, device):
    """Manual argmax loop with full recompute each step: no EOS stopping, no sampling."""
    prompt_ids = tok.encode(prompt, add_special_tokens=False).ids
    ids = list(prompt_ids)
    with torch.no_grad():
        for _ in range(GREEDY_TOKENS):
            x = torch.tensor([ids], dtype=torch.long, device=device)
            last = model(input_ids=x, use_cache=False).logits[0, -1].float()
            ids.append(int(torch.argmax(last)))
    new_ids = ids[len(prompt_ids):]
    return {"prompt": prompt, "prompt_ids": prompt_ids, "new_ids": new_ids,
            "text": tok.decode(new_ids, skip_special_tokens=False)}


def make_reference(shared, out):
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    result = {
        "generated_by": generated_by(name),
        "protocol": ("tokenizer.json without special tokens over the whole file; consecutive "
                     "non-overlapping %d-token windows, last partial dropped; positions 0..%d predict "
                     "1..%d; ppl = exp(nll_sum / scored); greedy = %d argmax tokens, no EOS stop"
                     % (WINDOW, WINDOW - 2, WINDOW - 1, GREEDY_TOKENS)),
    }
    errors = []
    texts = {}
    for key, fname in EVAL_TEXTS.items():
        with open(os.path.join(shared, "data", "text", fname), encoding="utf-8") as f:
            texts[key] = f.read()
    for mname in SHARED_MODELS:
        try:
            folder = os.path.join(shared, "models", mname)
            tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
            model = AutoModelForCausalLM.from_pretrained(
                folder, dtype=torch.float32, attn_implementation="eager").to(device).eval()
            entry = {}
            for key, text in texts.items():
                ids = tok.encode(text, add_special_tokens=False).ids
                entry[key] = perplexity(model, ids, device)
                log("%s %s: ppl %.6f over %d scored tokens" % (mname, key, entry[key]["ppl"], entry[key]["scored"]))
            entry["greedy"] = [greedy(model, tok, p, device) for p in PROMPTS]
            for g in entry["greedy"]:
                log("%s greedy %r -> %r" % (mname, g["prompt"], g["text"][:120]))
            result[mname] = entry
            del model
            if device == "cuda":
                torch.cuda.empty_cache()
        except Exception as e:
            traceback.print_exc()
            errors.append("reference %s: %r" % (mname, e))
    result["errors"] = errors
    rdir = os.path.join(out, "reference")
    os.makedirs(rdir, exist_ok=True)
    with open(os.path.join(rdir, "shared-models.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return errors


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", required=True, help="folder laid out like ../shared (models/, data/text/)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--strings", default=os.path.join(REPO, "tests", "fixtures", "tokenizer", "strings.json"))
    ap.add_argument("--only", default="models,tokenizers,reference", help="comma list of parts to run")
    args = ap.parse_args()

    no_tf32()
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    os.makedirs(args.out, exist_ok=True)
    parts = set(args.only.split(","))
    errors = []
    if "models" in parts:
        errors += make_tiny_models(args.out)
    if "tokenizers" in parts:
        errors += make_tokenizer_fixtures(args.shared, args.out, args.strings, log)
    if "reference" in parts:
        errors += make_reference(args.shared, args.out)
    for e in errors:
        log("ERROR " + e)
    log("done, %d error(s)" % len(errors))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
