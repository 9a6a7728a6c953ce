#!/usr/bin/env python3
"""PyTorch reference for brisk's training graph (issue 21), and a check that brisk's training
outputs load in transformers. Run on the GPU device machine (torch, transformers 5, safetensors):

    python3 scripts/golden/make_train_fixtures.py --golden tests/fixtures/golden --out /tmp/train \
        [--trained DIR ... --text FILE]

For each tiny golden model (tests/fixtures/golden/<variant>, fp32) it writes
<out>/<variant>/train.safetensors (copy it to tests/fixtures/golden/<variant>/):
  grad.<name>   dL/dp after one forward/backward, L the mean next-token cross-entropy of the
                fixture's input_ids: inputs ids[0:39], targets ids[1:40] (one window of 39);
  delta.<name>  p after two AdamW steps (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01,
                every parameter, the second step's gradients at the once-updated weights) minus p;
  losses        F64 [2]: the loss before each step.
Names are model.named_parameters() names (a tied head shares the embedding's entry).

For each --trained folder (brisk train / distill output) it loads the folder with
AutoModelForCausalLM and AutoTokenizer and writes the perplexity of --text by the protocol of
`brisk perplexity` (tokenizer without special tokens, non-overlapping 512-token windows, the last
partial one dropped) to <out>/trained.json.

fp32, eager attention, TF32 off; the tiny models run on the CPU.
"""

import argparse
import json
import math
import os

import torch

VARIANTS = ["llama-gqa", "qwen2", "gpt2"]
WINDOW = 39
ADAMW = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)


def no_tf32():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


def next_token_loss(model, ids):
    logits = model(ids[None, :WINDOW]).logits[0]
    return torch.nn.functional.cross_entropy(logits.double(), ids[1:WINDOW + 1])


def train_fixture(folder, out_dir):
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM

    ids = load_file(os.path.join(folder, "logits.safetensors"))["input_ids"].long()
    assert ids.numel() == WINDOW + 1, ids.shape
    model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()  # gradients flow all the same; eval() turns dropout off (GPT-2's configs have 0.1)
    params = dict(model.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items()}
    opt = torch.optim.AdamW(params.values(), **ADAMW)
    out, losses = {}, []
    for step in range(2):
        opt.zero_grad()
        loss = next_token_loss(model, ids)
        loss.backward()
        losses.append(loss.item())
        if step == 0:
            out.update({"grad." + n: p.grad.detach().clone().contiguous() for n, p in params.items()})
        opt.step()
    out.update({"delta." + n: (p.detach() - before[n]).contiguous() for n, p in params.items()})
    out["losses"] = torch.tensor(losses, dtype=torch.float64)
    os.makedirs(out_dir, exist_ok=True)
    save_file(out, os.path.join(out_dir, "train.safetensors"))
    return {"losses": losses, "parameters": len(params),
            "grad_abs_max": max(float(out["grad." + n].abs().max()) for n in params)}


def perplexity(folder, text_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tokenizers import Tokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    text = open(text_path, encoding="utf-8").read()
    # The protocol's ids: tokenizer.json itself (what `brisk perplexity` reads). AutoTokenizer must
    # load too; its count is reported (transformers may rebuild a tokenizer from its class).
    ids = Tokenizer.from_file(os.path.join(folder, "tokenizer.json")).encode(text, add_special_tokens=False).ids
    auto_tokens = len(AutoTokenizer.from_pretrained(folder)(text, add_special_tokens=False)["input_ids"])
    model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32, attn_implementation="eager")
    model.to(device).eval()
    nll, scored = 0.0, 0
    with torch.no_grad():
        for w in range(len(ids) // 512):
            x = torch.tensor(ids[w * 512:(w + 1) * 512], device=device)
            logits = model(x[None]).logits[0, :-1].double()
            nll += torch.nn.functional.cross_entropy(logits, x[1:], reduction="sum").item()
            scored += 511
    return {"ppl": math.exp(nll / scored), "tokens": len(ids), "auto_tokenizer_tokens": auto_tokens, "scored": scored,
            "model_type": model.config.model_type}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--golden", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--trained", nargs="*", default=[])
    ap.add_argument("--text")
    args = ap.parse_args()
    no_tf32()
    torch.manual_seed(0)
    import transformers
    report = {"torch": torch.__version__, "transformers": transformers.__version__, "adamw": ADAMW,
              "window": WINDOW, "variants": {}, "trained": {}}
    for v in VARIANTS:
        report["variants"][v] = train_fixture(os.path.join(args.golden, v), os.path.join(args.out, v))
        print(v, report["variants"][v], flush=True)
    for folder in args.trained:
        try:
            report["trained"][os.path.basename(folder.rstrip("/"))] = perplexity(folder, args.text)
        except Exception as e:  # report, keep going: one folder's failure is the finding
            report["trained"][os.path.basename(folder.rstrip("/"))] = {"error": repr(e)}
        print(folder, report["trained"][os.path.basename(folder.rstrip("/"))], flush=True)
    json.dump(report, open(os.path.join(args.out, "trained.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
