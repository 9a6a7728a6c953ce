#!/usr/bin/env python3
"""Trains brisk's default model, models/sotu-tiny: the model `brisk generate`, `brisk chat` and
`brisk serve` use when no -m is given, so that a fresh clone runs with nothing outside the repo.

How it was made (until `brisk train` exists, with PyTorch + Hugging Face transformers/tokenizers
on one GPU of the device machine):

    python3 scripts/train_default_model.py --text DIR --out models/sotu-tiny [--seconds 240]

- Text: US State of the Union addresses 1790-2018 (sotu-train.txt, public domain, works of the
  US government) and Moby-Dick (moby-dick.txt, Project Gutenberg, public domain); validation on
  sotu-valid.txt, the perplexity below on sotu-test.txt. DIR holds those files (../shared/data/text).
- Tokenizer: byte-level BPE (GPT-2's pre-tokenizer regex), 4,096 tokens trained on the training
  text, plus <|endoftext|> (id 0: document separator, bos and eos) and the ChatML markers
  <|im_start|> / <|im_end|> (ids 1, 2).
- Model: LlamaForCausalLM, hidden 256, 4 layers, 4 query / 2 key-value heads of 64, SwiGLU 768,
  tied embeddings, rope_theta 10000, 1,024 positions (trained on 512-token windows): 4.2M
  parameters, bf16 on disk (~8.5 MB).
- Chat: a ChatML template. One training window in five is a made-up exchange ("Continue this
  address: <a passage>" -> the passage's next sentences, then <|im_end|>), so that the model
  answers in the template's turns and ends them; it writes speeches, it does not follow
  instructions.
- Training: AdamW (lr 2e-3, betas 0.9/0.95, weight decay 0.1), 64 windows of 512 tokens per step,
  linear warm-up then cosine decay, bf16 autocast; validation every 100 steps, the best
  checkpoint kept (the text is small: 2.7M tokens; validation perplexity turns up after about eight
  passes, so the cosine schedule ends at 1,200 steps); stops at --seconds or after four
  validations without improvement.
- Result: written to <out>/training.json (steps, tokens seen, validation and test perplexity by
  transformers over non-overlapping 512-token windows, as `brisk perplexity --ctx 512` counts).
"""

import argparse
import json
import math
import os
import random
import re
import time

import torch

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
PROMPTS = ["Continue this address:", "Go on from here:", "Say more about this:", "What comes next?"]
SEQ = 512
VOCAB = 4096


def log(msg):
    print("[train] " + msg, flush=True)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def train_tokenizer(texts):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=SPECIALS, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def sentences(text):
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def chat_sample(sents, rng):
    """A made-up exchange from consecutive sentences: a passage in, the next ones out."""
    start = rng.randrange(0, max(1, len(sents) - 12))
    k = rng.randint(1, 3)
    passage = " ".join(sents[start:start + k])
    reply = " ".join(sents[start + k:start + k + rng.randint(2, 5)])
    return ("<|im_start|>user\n%s %s<|im_end|>\n<|im_start|>assistant\n%s<|im_end|>\n"
            % (rng.choice(PROMPTS), passage, reply))


def windows(ids, seq):
    n = (len(ids) - 1) // seq
    return torch.tensor(ids[:n * seq + 1], dtype=torch.long), n


@torch.no_grad()
def perplexity(model, ids, seq, device, batch=32):
    """Non-overlapping windows of `seq`; each window scores its tokens 1..seq-1 (as brisk does)."""
    model.eval()
    n = len(ids) // seq
    x = torch.tensor(ids[:n * seq], dtype=torch.long).view(n, seq)
    nll, count = 0.0, 0
    for i in range(0, n, batch):
        xb = x[i:i + batch].to(device)
        logits = model(input_ids=xb).logits.float()
        lp = torch.log_softmax(logits[:, :-1], dim=-1)
        nll -= lp.gather(-1, xb[:, 1:, None]).sum().item()
        count += xb[:, 1:].numel()
    # the tail window, shorter than seq
    tail = ids[n * seq:]
    if len(tail) > 1:
        xb = torch.tensor(tail, dtype=torch.long, device=device)[None]
        lp = torch.log_softmax(model(input_ids=xb).logits.float()[:, :-1], dim=-1)
        nll -= lp.gather(-1, xb[:, 1:, None]).sum().item()
        count += len(tail) - 1
    model.train()
    return math.exp(nll / count), count


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", required=True, help="folder with sotu-{train,valid,test}.txt and moby-dick.txt")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=240.0, help="training time budget")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.time()

    train_texts = [read(os.path.join(args.text, "sotu-train.txt")), read(os.path.join(args.text, "moby-dick.txt"))]
    tok = train_tokenizer(train_texts)
    assert [tok.token_to_id(s) for s in SPECIALS] == [0, 1, 2]
    eot = 0
    log("tokenizer: %d tokens (%.0f s)" % (tok.get_vocab_size(), time.time() - t0))

    rng = random.Random(args.seed)
    corpus = []
    for text in train_texts:
        corpus += tok.encode(text).ids + [eot]
    sents = sentences(train_texts[0])
    chats = [tok.encode(chat_sample(sents, rng)).ids + [eot] for _ in range(20000)]
    valid = tok.encode(read(os.path.join(args.text, "sotu-valid.txt"))).ids
    test = tok.encode(read(os.path.join(args.text, "sotu-test.txt"))).ids
    log("corpus %d tokens, %d chat samples, valid %d, test %d" % (len(corpus), len(chats), len(valid), len(test)))

    config = LlamaConfig(vocab_size=VOCAB, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=1024,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=eot,
                         eos_token_id=eot, pad_token_id=None)
    model = LlamaForCausalLM(config).to(device)
    params = sum(p.numel() for p in model.parameters())
    log("model: %d parameters" % params)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=2e-3, betas=(0.9, 0.95), fused=device == "cuda")
    data = torch.tensor(corpus, dtype=torch.long)
    batch, warmup, est_steps = 64, 100, 1200  # ~9 passes over the text: validation turns up after ~8
    chat_every = 5  # one window in five is a chat exchange

    def make_batch():
        rows = []
        for _ in range(batch):
            if rng.randrange(chat_every) == 0:
                seq = []
                while len(seq) < SEQ + 1:
                    seq += chats[rng.randrange(len(chats))]
                rows.append(torch.tensor(seq[:SEQ + 1]))
            else:
                at = rng.randrange(0, len(data) - SEQ - 1)
                rows.append(data[at:at + SEQ + 1])
        x = torch.stack(rows).to(device, non_blocking=True)
        return x[:, :-1], x[:, 1:]

    best, best_state, best_step, bad, step, history = float("inf"), None, 0, 0, 0, []
    start = time.time()
    model.train()
    while True:
        lr_scale = min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(step / est_steps, 1.0))))
        for g in opt.param_groups:
            g["lr"] = 2e-3 * lr_scale
        x, y = make_batch()
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        elapsed = time.time() - start
        if step % 100 == 0 or elapsed > args.seconds:
            ppl, _ = perplexity(model, valid, SEQ, device)
            history.append({"step": step, "seconds": round(elapsed, 1), "train_loss": round(loss.item(), 4),
                            "valid_ppl": round(ppl, 3)})
            log(json.dumps(history[-1]))
            if ppl < best:
                best, best_step, bad = ppl, step, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
            if bad >= 4 or elapsed > args.seconds:
                break
    model.load_state_dict(best_state)
    model.eval()
    test_ppl, scored = perplexity(model, test, SEQ, device)
    valid_ppl, _ = perplexity(model, valid, SEQ, device)
    log("best step %d: valid ppl %.3f, test ppl %.3f (%d scored tokens)" % (best_step, valid_ppl, test_ppl, scored))

    os.makedirs(args.out, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(args.out, safe_serialization=True)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIALS[0], eos_token=SPECIALS[0],
                                   unk_token=None, model_max_length=1024)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(args.out)
    # The chat template also as a file, and the end of a turn as a second eos (brisk chat stops there).
    with open(os.path.join(args.out, "chat_template.jinja"), "w") as f:
        f.write(CHAT_TEMPLATE)
    gen = {"bos_token_id": 0, "eos_token_id": [0, 2], "do_sample": True, "temperature": 0.8, "top_p": 0.95,
           "repetition_penalty": 1.1}
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=1)
    # bf16 reload: the perplexity of the weights as shipped.
    shipped = LlamaForCausalLM.from_pretrained(args.out, dtype=torch.bfloat16).to(device).float()
    shipped_ppl, _ = perplexity(shipped, test, SEQ, device)
    import tokenizers
    import transformers
    report = {"parameters": params, "best_step": best_step, "steps": step, "tokens_seen": step * batch * SEQ,
              "corpus_tokens": len(corpus), "valid_ppl": valid_ppl, "test_ppl_fp32_weights": test_ppl,
              "test_ppl_bf16_weights": shipped_ppl, "test_scored_tokens": scored, "window": SEQ,
              "history": history, "seconds": round(time.time() - t0, 1),
              "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
              "torch": torch.__version__, "transformers": transformers.__version__,
              "tokenizers": tokenizers.__version__, "seed": args.seed}
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump(report, f, indent=1)
    log("test ppl with bf16 weights %.3f; wrote %s" % (shipped_ppl, args.out))
    for name in sorted(os.listdir(args.out)):
        log("  %s %d bytes" % (name, os.path.getsize(os.path.join(args.out, name))))


if __name__ == "__main__":
    main()
