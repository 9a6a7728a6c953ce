#!/usr/bin/env python3
"""Golden fixtures for the architecture families added after the first three (issue 17):
Gemma-2, Gemma-3 (text), Phi-3, Mistral with a sliding window shorter than the sequence, and
BERT encoders (sentence-transformers pooling, sequence classification, WordPiece tokenizer).

Run where torch, transformers 5, tokenizers and sentence-transformers are installed (the GPU
device machine; everything here runs on its CPU in fp32, eager attention, TF32 off):

    python3 scripts/golden/make_family_fixtures.py --text sotu-train.txt --out /tmp/fixtures

and copy <out>/golden/* into tests/fixtures/golden/. Decoder variants use the same layout as
make_fixtures.py (config.json, model.safetensors, logits.safetensors with input_ids + logits,
and a -bf16 twin); their entries go to golden/families.json. BERT folders are described there too.
"""

import argparse
import copy
import json
import os
import sys
import traceback

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import (SEQ_LEN, build_model, generated_by, log, no_tf32, randomize,  # noqa: E402
                           save_with_bf16_twin)

COMMON = dict(vocab_size=320, hidden_size=64, intermediate_size=160, max_position_embeddings=128,
              rms_norm_eps=1e-5, pad_token_id=0, bos_token_id=1, eos_token_id=2)


def decoder_variants():
    """(name, config, note): each exercises one feature a new family brings."""
    from transformers import Gemma2Config, Gemma3TextConfig, MistralConfig, Phi3Config

    half = 8  # head_dim 16 -> 8 rotary frequencies
    longrope = dict(rope_type="longrope", rope_theta=10000.0,
                    short_factor=[1.0 + 0.05 * i for i in range(half)],
                    long_factor=[1.0 + 0.4 * i for i in range(half)],
                    original_max_position_embeddings=32)
    return [
        ("gemma2",
         Gemma2Config(**COMMON, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=24, query_pre_attn_scalar=20, sliding_window=16,
                      attn_logit_softcapping=5.0, final_logit_softcapping=3.0,
                      layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                      hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True),
         "Gemma-2: window 16 < 40 tokens on layers 0 and 2, attention soft-cap 5, final soft-cap 3, "
         "query_pre_attn_scalar 20, head_dim 24, GeGLU, (1+w) norms before and after each block"),
        ("gemma2-nocap",
         Gemma2Config(**COMMON, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                      head_dim=16, query_pre_attn_scalar=16, sliding_window=64,
                      attn_logit_softcapping=None, final_logit_softcapping=None,
                      hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True),
         "Gemma-2 without soft-capping, window 64 beyond the sequence, MHA"),
        ("gemma3",
         Gemma3TextConfig(**COMMON, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                          head_dim=16, query_pre_attn_scalar=16, sliding_window=16,
                          layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                          hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True),
         "Gemma-3 text: q/k RMSNorm, window 16 on layers 0-1, local and global rope bases"),
        ("phi3",
         Phi3Config(**COMMON, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                    tie_word_embeddings=False, rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
         "Phi-3: fused qkv_proj and gate_up_proj, GQA 4/2"),
        ("phi3-longrope",
         Phi3Config(**COMMON, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                    original_max_position_embeddings=32, rope_parameters=longrope, tie_word_embeddings=False),
         "Phi-3.5 style LongRoPE (su): short/long factors, original max pos 32 < max pos 128"),
        ("mistral-window",
         MistralConfig(**COMMON, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       sliding_window=16, tie_word_embeddings=False,
                       rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
         "Mistral with sliding_window 16 < 40 tokens"),
    ]


def make_decoders(gdir, index):
    errors = []
    for k, (name, config, note) in enumerate(decoder_variants()):
        try:
            seed = 2000 + k
            torch.manual_seed(seed)
            model = build_model(config)
            randomize(model, seed)
            ids = torch.randint(3, config.vocab_size, (SEQ_LEN,), generator=torch.Generator().manual_seed(seed))
            entry = save_with_bf16_twin(gdir, name, model, ids, note, seed, False)
            index["variants"][name] = entry
            log("family %s: %s" % (name, json.dumps(entry)))
            if max(entry["reload_max_diff"], entry["reload_max_diff_bf16"]) > 1e-4:
                errors.append("%s: reloaded logits differ" % name)
        except Exception as e:
            traceback.print_exc()
            errors.append("family %s: %r" % (name, e))
    return errors


# ---------------------------------------------------------------------------------------------
# BERT: WordPiece tokenizer, encoder + sentence-transformers pooling, sequence classification
# ---------------------------------------------------------------------------------------------

WORDPIECE_STRINGS = [
    "The State of the Union is strong.",
    "Café déjà vu, naïve façade — Ångström!",
    "中文字符 and 日本語のテキスト mixed with English",
    "Hello,world!!! (yes)... 'quoted' \"double\" [brackets] {braces} <tags>",
    "emoji 🙂 and symbols ∑ ∞ ☃ are unknown",
    "tabs\tand\nnewlines\r\nand\u00a0non-breaking\u3000spaces",
    "UPPER lower MiXeD CaSe 12345 3.14159 1,000,000",
    "[CLS] [SEP] [MASK] written as text, and [UNK] too",
    "a" * 120 + " supercalifragilisticexpialidocious antidisestablishmentarianism",
    "",
    "   ",
    "control\u0000chars\u0007and\u200bzero width",
]
SENTENCES = [
    "The State of the Union is strong.",
    "Congress must act on the budget this year.",
    "Café déjà vu 中文",
    "We the people",
]
MAX_LENGTH = 16  # the truncation case: add_special_tokens, truncation to 16 ids


def train_wordpiece(text_path, folder):
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast
    with open(text_path, encoding="utf-8") as f:
        lines = f.read(200000).splitlines()
    tok = BertWordPieceTokenizer(lowercase=True, strip_accents=None, clean_text=True, handle_chinese_chars=True)
    tok.train_from_iterator(lines, vocab_size=700, min_frequency=2,
                            special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    os.makedirs(folder, exist_ok=True)
    tok.save_model(folder)  # vocab.txt
    from transformers.models.bert.tokenization_bert import load_vocab
    # transformers 5 ignores vocab_file here (the tokenizer came out with 5 tokens): pass the vocab.
    fast = BertTokenizerFast(vocab=dict(load_vocab(os.path.join(folder, "vocab.txt"))), do_lower_case=True,
                             model_max_length=128)
    assert fast.vocab_size > 100, "WordPiece vocabulary did not load (%d tokens)" % fast.vocab_size
    fast.save_pretrained(folder)  # tokenizer.json, tokenizer_config.json, special_tokens_map.json
    return fast


def tokenizer_cases(fast):
    cases = []
    for s in WORDPIECE_STRINGS:
        cases.append({"text": s,
                      "ids": fast(s, add_special_tokens=False)["input_ids"],
                      "ids_special": fast(s)["input_ids"],
                      "ids_truncated": fast(s, truncation=True, max_length=MAX_LENGTH)["input_ids"],
                      "decoded": fast.decode(fast(s)["input_ids"], skip_special_tokens=True)})
    return {"max_length": MAX_LENGTH, "cases": cases}


def make_bert(text_path, gdir, index):
    from safetensors.torch import save_file
    from sentence_transformers import SentenceTransformer, models as st_models
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    errors = []
    try:
        folder = os.path.join(gdir, "bert")
        fast = train_wordpiece(text_path, folder)
        with open(os.path.join(gdir, "bert-wordpiece.json"), "w", encoding="utf-8") as f:
            json.dump(tokenizer_cases(fast), f, ensure_ascii=False, indent=1)
            f.write("\n")
        config = BertConfig(vocab_size=fast.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=160, max_position_embeddings=128, type_vocab_size=2,
                            hidden_act="gelu", layer_norm_eps=1e-12)
        torch.manual_seed(3000)
        model = BertModel(config, add_pooling_layer=False).float().eval()
        randomize(model, 3000)
        model.save_pretrained(folder)
        fast.save_pretrained(folder)
        # sentence-transformers: mean pooling + normalize, saved beside the weights.
        word = st_models.Transformer(folder, max_seq_length=128)
        mean = st_models.Pooling(word.get_word_embedding_dimension(), pooling_mode="mean")
        st = SentenceTransformer(modules=[word, mean, st_models.Normalize()], device="cpu")
        st.save(folder)
        cls_st = SentenceTransformer(modules=[word, st_models.Pooling(64, pooling_mode="cls")], device="cpu")
        tensors = {}
        emb_mean = st.encode(SENTENCES, convert_to_tensor=True, batch_size=4).float()
        emb_cls = cls_st.encode(SENTENCES, convert_to_tensor=True, batch_size=4).float()
        for i, s in enumerate(SENTENCES):
            ids = torch.tensor(fast(s)["input_ids"], dtype=torch.int64)
            with torch.no_grad():
                hidden = model(input_ids=ids[None]).last_hidden_state[0]
            tensors["input_ids.%d" % i] = ids.contiguous()
            tensors["hidden.%d" % i] = hidden.float().contiguous()
            tensors["mean_normalized.%d" % i] = emb_mean[i].contiguous()
            tensors["cls.%d" % i] = emb_cls[i].contiguous()
        save_file(tensors, os.path.join(folder, "embeddings.safetensors"))
        index["variants"]["bert"] = {"note": "BertModel 2 layers, WordPiece vocab %d trained on the text; "
                                             "sentence-transformers mean pooling + normalize (saved), CLS "
                                             "pooling (embeddings only)" % fast.vocab_size,
                                     "class": "BertModel", "seed": 3000, "sentences": SENTENCES}
        log("bert: vocab %d" % fast.vocab_size)

        # Sequence classification: the same tokenizer, its own randomized weights.
        cfolder = os.path.join(gdir, "bert-cls")
        ccfg = copy.deepcopy(config)
        ccfg.num_labels = 3
        ccfg.id2label = {0: "negative", 1: "neutral", 2: "positive"}
        ccfg.label2id = {v: k for k, v in ccfg.id2label.items()}
        torch.manual_seed(3001)
        cmodel = BertForSequenceClassification(ccfg).float().eval()
        randomize(cmodel, 3001)
        cmodel.save_pretrained(cfolder)
        fast.save_pretrained(cfolder)
        ctensors = {}
        for i, s in enumerate(SENTENCES):
            ids = torch.tensor(fast(s)["input_ids"], dtype=torch.int64)
            with torch.no_grad():
                logits = cmodel(input_ids=ids[None]).logits[0]
            ctensors["input_ids.%d" % i] = ids.contiguous()
            ctensors["logits.%d" % i] = logits.float().contiguous()
        save_file(ctensors, os.path.join(cfolder, "classification.safetensors"))
        index["variants"]["bert-cls"] = {"note": "BertForSequenceClassification, 3 labels, pooler + classifier",
                                         "class": "BertForSequenceClassification", "seed": 3001}
    except Exception as e:
        traceback.print_exc()
        errors.append("bert: %r" % (e,))
    return errors


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", required=True, help="training text for the WordPiece vocabulary (sotu-train.txt)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="decoders,bert")
    args = ap.parse_args()
    no_tf32()
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    gdir = os.path.join(args.out, "golden")
    os.makedirs(gdir, exist_ok=True)
    index = {"generated_by": generated_by("cpu"), "seq_len": SEQ_LEN, "variants": {}}
    errors = []
    parts = set(args.only.split(","))
    if "decoders" in parts:
        errors += make_decoders(gdir, index)
    if "bert" in parts:
        errors += make_bert(args.text, gdir, index)
    index["errors"] = errors
    with open(os.path.join(gdir, "families.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    for e in errors:
        log("ERROR " + e)
    log("done, %d error(s)" % len(errors))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
