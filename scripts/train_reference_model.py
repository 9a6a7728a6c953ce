#!/usr/bin/env python3
"""Trains a Llama-architecture model of a published shape from scratch with PyTorch and
transformers (the GPU machine), for benchmarks that need trained weights at a real model's size:
random weights give near-uniform next-token distributions, so compression scores and perplexities
on them say nothing (bench/results/optimize-tinyllama-random-*.json measured a rank correlation of
-0.19 there). Writes a Hugging Face folder (bf16 safetensors, the SentencePiece tokenizer.model)
that brisk loads.

  python3 scripts/train_reference_model.py --shape tinyllama-1.1b --tokenizer DIR/tokenizer.model \
      --train sotu-train.txt --eval sotu-test.txt --steps 400 --out /tmp/tinyllama-sotu

Mixed precision (bf16 autocast, fp32 master weights, fused AdamW), warmup then cosine decay,
gradient clipping at 1.0; prints one JSON line with the losses, eval perplexity (windows of
--ctx tokens, as brisk perplexity scores them: every token after the first of each window) and
tokens/s."""
import argparse
import json
import math
import os
import shutil
import time

import sentencepiece
import torch
from transformers import LlamaConfig, LlamaForCausalLM

# Published shapes (the models' own config.json values).
SHAPES = {
    "tinyllama-1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                           num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048, rms_norm_eps=1e-5,
                           bos_token_id=1, eos_token_id=2, tie_word_embeddings=False),  # rope_theta: the default 10000
}


def tokens_of(sp, path):
    with open(path, encoding="utf-8") as f:
        return torch.tensor(sp.encode(f.read()), dtype=torch.long)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tinyllama-1.1b")
    ap.add_argument("--tokenizer", required=True, help="SentencePiece tokenizer.model (its vocabulary sets vocab_size)")
    ap.add_argument("--train", required=True)
    ap.add_argument("--eval", required=True)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=16, help="sequences per step")
    ap.add_argument("--ctx", type=int, default=512, help="tokens per sequence (and per eval window)")
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--warmup", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    sp = sentencepiece.SentencePieceProcessor(model_file=a.tokenizer)
    train, held_out = tokens_of(sp, a.train), tokens_of(sp, a.eval)
    config = LlamaConfig(**{**SHAPES[a.shape], "vocab_size": sp.get_piece_size()})
    model = LlamaForCausalLM(config).cuda()
    model.config.use_cache = False
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1, fused=True)

    def lr_at(step):
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        return a.lr * 0.5 * (1 + math.cos(math.pi * (step - a.warmup) / max(a.steps - a.warmup, 1)))

    gen = torch.Generator().manual_seed(a.seed)
    losses, start = [], time.time()
    model.train()
    for step in range(a.steps):
        at = torch.randint(0, len(train) - a.ctx - 1, (a.batch,), generator=gen)
        batch = torch.stack([train[i:i + a.ctx] for i in at.tolist()]).cuda()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 50 == 0:
            print(f"step {step} loss {losses[-1]:.3f} {time.time() - start:.0f} s", flush=True)
    torch.cuda.synchronize()
    seconds = time.time() - start

    model.eval()
    model = model.to(torch.bfloat16)
    nll, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(held_out) - a.ctx + 1, a.ctx):
            window = held_out[s:s + a.ctx].unsqueeze(0).cuda()
            logits = model(input_ids=window).logits.float()
            nll += torch.nn.functional.cross_entropy(logits[0, :-1], window[0, 1:], reduction="sum").item()
            count += a.ctx - 1
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True)
    shutil.copy(a.tokenizer, os.path.join(a.out, "tokenizer.model"))
    print(json.dumps({"shape": a.shape, "steps": a.steps, "tokens": a.steps * a.batch * a.ctx, "seconds": seconds,
                      "tokens_per_s": a.steps * a.batch * a.ctx / seconds, "first_loss": losses[0],
                      "final_loss": sum(losses[-20:]) / len(losses[-20:]), "eval_ppl_bf16": math.exp(nll / count),
                      "eval_tokens": count, "train_tokens_available": len(train)}))


if __name__ == "__main__":
    main()
