#!/usr/bin/env python3
"""A small GGUF writer for brisk's tests, written from the GGUF spec (ggml docs/gguf.md) with the
standard library only: it converts a Hugging Face model folder (safetensors + tokenizer.json) the
way llama.cpp's convert_hf_to_gguf.py does (tensor names, llama's Q/K row permutation, GPT-2's
Conv1D matrices stored [out, in], Phi-3's fused tensors and LongRoPE factor tensors, Gemma's norms
stored as 1 + w, BERT's names and WordPiece vocabulary, tokenizer.ggml.* metadata) and quantizes
2-D weights itself. Folders without tokenizer.json get no tokenizer metadata.

  gguf_writer.py model DIR OUT.gguf --type f32|f16|bf16|q8_0|q4_0 [--sidecar-tensor NAME --sidecar F]
                 [--round-to q8_0|...] [--drop-key KEY] [--drop-tensor NAME]   (for the tests)
  gguf_writer.py spm tokenizer.model OUT.gguf     (a tokenizer-only file, tokenizer.ggml.model=llama)

--sidecar writes the writer's own fp32 dequantization of one GGUF tensor, so the C++ reader can
be checked against an independent decoder.

Where llama.cpp's converter cannot express a checkpoint, this writer adds what brisk reads (each
written only when the default would be wrong): Gemma's `attention.scale` when
query_pre_attn_scalar is not what llama.cpp derives, soft-caps of 0 for "none" (Gemma-2), and
`attention.sliding_window_pattern` (a period, else one bool per layer) when layer_types differ
from llama.cpp's fixed pattern.
"""
import argparse
import array
import json
import math
import os
import struct
import sys

ALIGNMENT = 32
# gguf_type (metadata value types)
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
# ggml_type (tensor types)
GGML = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8, "bf16": 30}

LLAMA3_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
QWEN2_REGEX = LLAMA3_REGEX.replace("\\p{N}{1,3}", "\\p{N}")


# ---------------------------------------------------------------- reading the Hugging Face folder
def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        if info["dtype"] == "F32":
            values = array.array("f", raw)
        elif info["dtype"] == "BF16":
            halves = array.array("H", raw)
            values = array.array("f", array.array("I", [h << 16 for h in halves]).tobytes())
        elif info["dtype"] == "F16":
            values = array.array("f", [struct.unpack("<e", raw[i:i + 2])[0] for i in range(0, len(raw), 2)])
        else:
            raise SystemExit(f"{path}: {name}: dtype {info['dtype']} not handled")
        out[name] = (list(info["shape"]), values)
    return out


def read_weights(folder):
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        shards = sorted(set(json.load(open(index))["weight_map"].values()))
    else:
        shards = ["model.safetensors"]
    tensors = {}
    for shard in shards:
        tensors.update(read_safetensors(os.path.join(folder, shard)))
    return tensors


# ---------------------------------------------------------------- quantizers (ggml reference rules)
def f16_round(x):
    return struct.unpack("<e", struct.pack("<e", x))[0]


def quantize_q8_0(values):
    """Blocks of 32: fp16 d = amax/127, int8 q = round(x/d). Returns (bytes, dequantized floats)."""
    out, deq = bytearray(), array.array("f")
    for b in range(0, len(values), 32):
        blk = values[b:b + 32]
        amax = max(abs(x) for x in blk)
        d = amax / 127.0
        inv = 1.0 / d if d else 0.0
        qs = [int(round(x * inv)) for x in blk]
        d16 = f16_round(d)
        out += struct.pack("<e32b", d, *qs)
        deq.extend(q * d16 for q in qs)
    return bytes(out), deq


def quantize_q4_0(values):
    """Blocks of 32: d = (signed value of largest magnitude) / -8, q = clamp(x/d + 8.5, 0, 15);
    elements 0..15 in the low nibbles, 16..31 in the high nibbles."""
    out, deq = bytearray(), array.array("f")
    for b in range(0, len(values), 32):
        blk = values[b:b + 32]
        extreme = max(blk, key=abs)
        d = extreme / -8.0
        inv = 1.0 / d if d else 0.0
        qs = [min(15, int(x * inv + 8.5)) for x in blk]
        d16 = f16_round(d)
        out += struct.pack("<e", d) + bytes(qs[i] | (qs[i + 16] << 4) for i in range(16))
        deq.extend((q - 8) * d16 for q in qs)
    return bytes(out), deq


def encode_tensor(values, ggml_type):
    """Returns (bytes, what a reader must decode them to)."""
    if ggml_type == "f32":
        return values.tobytes(), values
    if ggml_type == "f16":
        packed = struct.pack(f"<{len(values)}e", *values)
        return packed, array.array("f", struct.unpack(f"<{len(values)}e", packed))
    if ggml_type == "bf16":  # the values came from bf16, so truncation is exact
        bits = array.array("I", values.tobytes())
        halves = array.array("H", [u >> 16 for u in bits])
        return halves.tobytes(), array.array("f", array.array("I", [h << 16 for h in halves]).tobytes())
    if ggml_type == "q8_0":
        return quantize_q8_0(values)
    if ggml_type == "q4_0":
        return quantize_q4_0(values)
    raise ValueError(ggml_type)


# ---------------------------------------------------------------- llama.cpp's conversion rules
def permute_rows(values, rows, cols, heads):
    """llama.cpp's LlamaModel.permute: each head's rows [2, half] become [half, 2] (interleaved
    rotary pairs)."""
    out = array.array("f", bytes(len(values) * 4))
    head_dim = rows // heads
    half = head_dim // 2
    for h in range(heads):
        for j in range(2):
            for i in range(half):
                src = (h * head_dim + j * half + i) * cols
                dst = (h * head_dim + 2 * i + j) * cols
                out[dst:dst + cols] = values[src:src + cols]
    return out


def transpose(values, rows, cols):
    out = array.array("f", bytes(len(values) * 4))
    for r in range(rows):
        out[r::rows] = values[r * cols:(r + 1) * cols]
    return out


def convert_tensors(config, hf):
    """Yields (gguf name, shape [rows, cols] or [n], fp32 values) in llama.cpp's layout."""
    arch = config["model_type"]
    if arch == "gpt2":
        for name, (shape, values) in hf.items():
            if name.endswith((".attn.bias", ".attn.masked_bias")):
                continue
            n = name.removeprefix("transformer.")
            if n == "wte.weight":
                yield "token_embd.weight", shape, values
            elif n == "wpe.weight":
                yield "position_embd.weight", shape, values
            elif n.startswith("ln_f."):
                yield "output_norm." + n.split(".")[-1], shape, values
            elif n.startswith("h."):
                _, layer, *rest = n.split(".")
                part = ".".join(rest[:-1])
                kind = rest[-1]
                gguf = {"ln_1": "attn_norm", "ln_2": "ffn_norm", "attn.c_attn": "attn_qkv",
                        "attn.c_proj": "attn_output", "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}[part]
                if kind == "weight" and len(shape) == 2:  # Conv1D [in, out] -> [out, in]
                    values = transpose(values, shape[0], shape[1])
                    shape = [shape[1], shape[0]]
                yield f"blk.{layer}.{gguf}.{kind}", shape, values
        return
    if arch == "bert":
        yield from convert_bert(hf)
        return
    if arch in ("gemma2", "gemma3_text"):
        yield from convert_gemma(hf)
        return
    if arch == "phi3":
        yield from rope_factor_tensors(config)
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    parts = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
             "self_attn.qkv_proj": "attn_qkv", "mlp.gate_up_proj": "ffn_up",  # phi3: fused, stored as is
             "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down"}
    for name, (shape, values) in hf.items():
        if name == "model.embed_tokens.weight":
            yield "token_embd.weight", shape, values
        elif name == "model.norm.weight":
            yield "output_norm.weight", shape, values
        elif name == "lm_head.weight":
            yield "output.weight", shape, values
        elif name.startswith("model.layers."):
            _, _, layer, *rest = name.split(".")
            part, kind = ".".join(rest[:-1]), rest[-1]
            gguf = parts[part]
            if arch == "llama" and gguf in ("attn_q", "attn_k"):
                n_heads = heads if gguf == "attn_q" else kv_heads
                values = permute_rows(values, shape[0], shape[1] if len(shape) == 2 else 1, n_heads)
            yield f"blk.{layer}.{gguf}.{kind}", shape, values


def convert_gemma(hf):
    """Gemma2Model / Gemma3Model: every *norm.weight + 1 (transformers scales by 1 + w), lm_head
    dropped (tied), the post-norms under their own names."""
    parts = {"input_layernorm": "attn_norm", "post_attention_layernorm": "post_attention_norm",
             "pre_feedforward_layernorm": "ffn_norm", "post_feedforward_layernorm": "post_ffw_norm",
             "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down"}
    for name, (shape, values) in hf.items():
        if name == "lm_head.weight":
            continue
        if name.endswith("norm.weight"):  # an fp32 sum rounded once, as torch's
            values = array.array("f", [x + 1.0 for x in values])
        if name == "model.embed_tokens.weight":
            yield "token_embd.weight", shape, values
        elif name == "model.norm.weight":
            yield "output_norm.weight", shape, values
        else:
            _, _, layer, *rest = name.split(".")
            yield f"blk.{layer}.{parts['.'.join(rest[:-1])]}.{rest[-1]}", shape, values


def convert_bert(hf):
    """BertModel: the "bert." prefix stripped, the pooler and pre-training heads dropped;
    BertForSequenceClassification's classifier kept as cls.output (as llama.cpp does)."""
    parts = {"attention.self.query": "attn_q", "attention.self.key": "attn_k", "attention.self.value": "attn_v",
             "attention.output.dense": "attn_output", "attention.output.LayerNorm": "attn_output_norm",
             "intermediate.dense": "ffn_up", "output.dense": "ffn_down", "output.LayerNorm": "layer_output_norm"}
    top = {"embeddings.word_embeddings": "token_embd", "embeddings.position_embeddings": "position_embd",
           "embeddings.token_type_embeddings": "token_types", "embeddings.LayerNorm": "token_embd_norm",
           "classifier": "cls.output"}
    for name, (shape, values) in hf.items():
        n = name.removeprefix("bert.")
        if n.startswith(("pooler.", "cls.")) or n == "embeddings.position_ids":
            continue
        module, kind = n.rsplit(".", 1)
        if module in top:
            yield f"{top[module]}.{kind}", shape, values
        else:
            _, _, layer, *rest = module.split(".")
            yield f"blk.{layer}.{parts['.'.join(rest)]}.{kind}", shape, values


def rope_parameters(config):
    return config.get("rope_parameters") or config.get("rope_scaling") or {}


def is_longrope(config):
    rope = rope_parameters(config)
    return rope.get("rope_type", rope.get("type")) in ("longrope", "su")


def rope_factor_tensors(config):
    """Phi3MiniModel.generate_extra_tensors: LongRoPE factors as F32 vectors."""
    if is_longrope(config):
        for which in ("long", "short"):
            factors = rope_parameters(config)[f"{which}_factor"]
            yield f"rope_factors_{which}.weight", [len(factors)], array.array("f", factors)


def phi3_metadata(config):
    """Phi3MiniModel.set_gguf_parameters (+ the LongRoPE attention factor)."""
    a = "phi3."
    heads, hidden = config["num_attention_heads"], config["hidden_size"]
    rope = rope_parameters(config)
    original = rope.get("original_max_position_embeddings", config.get("original_max_position_embeddings"))
    meta = [(a + "context_length", UINT32, config["max_position_embeddings"]),
            (a + "rope.scaling.original_context_length", UINT32, original),
            (a + "embedding_length", UINT32, hidden),
            (a + "feed_forward_length", UINT32, config["intermediate_size"]),
            (a + "block_count", UINT32, config["num_hidden_layers"]),
            (a + "attention.head_count", UINT32, heads),
            (a + "attention.head_count_kv", UINT32, config.get("num_key_value_heads", heads)),
            (a + "attention.layer_norm_rms_epsilon", FLOAT32, config["rms_norm_eps"]),
            (a + "rope.dimension_count", UINT32, hidden // heads),
            (a + "rope.freq_base", FLOAT32, rope.get("rope_theta", config.get("rope_theta", 10000.0))),
            (a + "attention.sliding_window", UINT32, config.get("sliding_window") or 0)]
    if is_longrope(config):
        scale = config["max_position_embeddings"] / original
        factor = math.sqrt(1 + math.log(scale) / math.log(original)) if scale > 1.0 else 1.0
        meta.append((a + "rope.scaling.attn_factor", FLOAT32, factor))
    return meta


def gemma_metadata(config, arch):
    """Gemma2Model / Gemma3Model.set_gguf_parameters, plus what brisk needs where llama.cpp
    derives a value the checkpoint does not have (see the module docstring)."""
    a = arch + "."
    heads, layers, hidden = config["num_attention_heads"], config["num_hidden_layers"], config["hidden_size"]
    head_dim = config.get("head_dim", 256)
    rope = rope_parameters(config)
    gemma3 = arch == "gemma3"
    meta = [(a + "context_length", UINT32, config["max_position_embeddings"]),
            (a + "embedding_length", UINT32, hidden),
            (a + "block_count", UINT32, layers),
            (a + "feed_forward_length", UINT32, config["intermediate_size"]),
            (a + "attention.head_count", UINT32, heads),
            (a + "attention.head_count_kv", UINT32, config.get("num_key_value_heads", heads)),
            (a + "attention.layer_norm_rms_epsilon", FLOAT32, config["rms_norm_eps"]),
            (a + "attention.key_length", UINT32, head_dim),
            (a + "attention.value_length", UINT32, head_dim),
            (a + "rope.freq_base", FLOAT32, rope.get("full_attention", rope).get("rope_theta", 10000.0)),
            (a + "attention.sliding_window", UINT32, config["sliding_window"])]
    if gemma3:
        if config.get("final_logit_softcapping"):
            meta.append((a + "final_logit_softcapping", FLOAT32, config["final_logit_softcapping"]))
        if "sliding_attention" in rope:  # newer converters, from transformers 5's rope_parameters
            meta.append((a + "rope.freq_base_swa", FLOAT32, rope["sliding_attention"]["rope_theta"]))
    else:
        for key in ("attn_logit_softcapping", "final_logit_softcapping"):
            meta.append((a + key, FLOAT32, config.get(key) or 0.0))
    # llama.cpp's query scale: hidden / heads for the 27B models (by layer count), else head_dim.
    derived = hidden // heads if layers == (62 if gemma3 else 46) else head_dim
    scalar = config.get("query_pre_attn_scalar", head_dim)
    if scalar != derived:
        meta.append((a + "attention.scale", FLOAT32, scalar ** -0.5))
    # llama.cpp's layer pattern: period 2 (gemma2) or 6 (gemma3), layer l sliding unless
    # l % period == period - 1.
    types = config.get("layer_types")
    if types:
        sliding = [t == "sliding_attention" for t in types]

        def period_pattern(p):
            return [i % p < p - 1 for i in range(layers)]

        if sliding != period_pattern(6 if gemma3 else 2):
            period = next((p for p in range(1, layers + 2) if period_pattern(p) == sliding), None)
            if period is not None:
                meta.append((a + "attention.sliding_window_pattern", UINT32, period))
            else:
                meta.append((a + "attention.sliding_window_pattern", (ARRAY, BOOL), sliding))
    return meta


def pooling_type(folder):
    """_try_set_pooling_type: the sentence-transformers Pooling module's mode as llama.cpp's enum
    (1 mean, 2 cls, 3 last); None without one. Reads the boolean pooling_mode_* flags and
    sentence-transformers 5's single "pooling_mode" name."""
    modules = os.path.join(folder, "modules.json")
    if not os.path.exists(modules):
        return None
    for module in json.load(open(modules)):
        if module["type"].endswith("Pooling"):
            pooling = json.load(open(os.path.join(folder, module["path"], "config.json")))
            mode = pooling.get("pooling_mode")
            for flag, name, value in (("pooling_mode_mean_tokens", "mean", 1), ("pooling_mode_cls_token", "cls", 2),
                                      ("pooling_mode_lasttoken", "lasttoken", 3)):
                if pooling.get(flag) or mode == name:
                    return value
            raise SystemExit(f"{folder}: only mean, cls and lasttoken pooling convert")
    return None


def bert_metadata(config, folder):
    """BertModel.set_gguf_parameters."""
    a = "bert."
    meta = [(a + "context_length", UINT32, config["max_position_embeddings"]),
            (a + "embedding_length", UINT32, config["hidden_size"]),
            (a + "feed_forward_length", UINT32, config["intermediate_size"]),
            (a + "block_count", UINT32, config["num_hidden_layers"]),
            (a + "attention.head_count", UINT32, config["num_attention_heads"]),
            (a + "attention.layer_norm_epsilon", FLOAT32, config["layer_norm_eps"]),
            (a + "attention.causal", BOOL, False)]
    pooling = pooling_type(folder)
    if pooling is not None:
        meta.append((a + "pooling_type", UINT32, pooling))
    labels = config.get("id2label")
    if config.get("architectures", ["BertModel"])[0] == "BertForSequenceClassification" and labels:
        meta.append((a + "classifier.output_labels", (ARRAY, STRING), [labels[k] for k in sorted(labels, key=int)]))
    return meta


def model_metadata(config, folder):
    arch = gguf_arch(config)
    a = arch + "."
    if arch == "bert":
        return [("general.architecture", STRING, arch)] + bert_metadata(config, folder)
    if arch in ("gemma2", "gemma3"):
        return [("general.architecture", STRING, arch)] + gemma_metadata(config, arch)
    if arch == "phi3":
        return [("general.architecture", STRING, arch)] + phi3_metadata(config)
    if arch == "gpt2":
        return [("general.architecture", STRING, arch),
                (a + "context_length", UINT32, config["n_positions"]),
                (a + "embedding_length", UINT32, config["n_embd"]),
                (a + "feed_forward_length", UINT32, config.get("n_inner") or 4 * config["n_embd"]),
                (a + "block_count", UINT32, config["n_layer"]),
                (a + "attention.head_count", UINT32, config["n_head"]),
                (a + "attention.layer_norm_epsilon", FLOAT32, config["layer_norm_epsilon"])]
    rope = config.get("rope_parameters") or {}
    theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    return [("general.architecture", STRING, arch),
            (a + "context_length", UINT32, config["max_position_embeddings"]),
            (a + "embedding_length", UINT32, config["hidden_size"]),
            (a + "feed_forward_length", UINT32, config["intermediate_size"]),
            (a + "block_count", UINT32, config["num_hidden_layers"]),
            (a + "attention.head_count", UINT32, heads),
            (a + "attention.head_count_kv", UINT32, config.get("num_key_value_heads", heads)),
            (a + "attention.key_length", UINT32, head_dim),
            (a + "attention.value_length", UINT32, head_dim),
            (a + "rope.dimension_count", UINT32, head_dim),
            (a + "rope.freq_base", FLOAT32, theta),
            (a + "attention.layer_norm_rms_epsilon", FLOAT32, config["rms_norm_eps"])]


def gguf_arch(config):
    return {"gemma3_text": "gemma3"}.get(config["model_type"], config["model_type"])


def pre_tokenizer_name(pre, path):
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    if pre.get("type") == "Sequence":
        split = pre["pretokenizers"][0]
        regex = split.get("pattern", {}).get("Regex")
        if regex == LLAMA3_REGEX:
            return "llama-bpe"
        if regex == QWEN2_REGEX:
            return "qwen2"
    raise SystemExit(f"{path}: pre-tokenizer has no llama.cpp name this writer knows")


def wordpiece_metadata(tok, config):
    """BertModel.set_vocab: WordPiece pieces respelled the SentencePiece way (word-initial pieces
    gain U+2581, continuations lose "##", control tokens stay), special tokens by id."""
    vocab = dict(tok["model"]["vocab"])
    special = set()
    for added in tok.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
        if added.get("special"):
            special.add(added["content"])
    tokens = [None] * (max(vocab.values()) + 1)
    for t, i in vocab.items():
        tokens[i] = t
    types = [3 if t in special else 1 for t in tokens]  # CONTROL / NORMAL
    spelled = [t if kind == 3 else t[2:] if t.startswith("##") else "\u2581" + t for t, kind in zip(tokens, types)]
    meta = [("tokenizer.ggml.model", STRING, "bert"),
            ("tokenizer.ggml.pre", STRING, "default"),
            ("tokenizer.ggml.tokens", (ARRAY, STRING), spelled),
            ("tokenizer.ggml.token_type", (ARRAY, INT32), types),
            ("tokenizer.ggml.token_type_count", UINT32, config.get("type_vocab_size", 1))]
    # gguf.SpecialVocab's keys (llama.cpp spells the separator "seperator").
    for key, token in (("cls_token_id", "[CLS]"), ("seperator_token_id", "[SEP]"), ("unknown_token_id", "[UNK]"),
                       ("padding_token_id", "[PAD]"), ("mask_token_id", "[MASK]")):
        if token in vocab:
            meta.append((f"tokenizer.ggml.{key}", UINT32, vocab[token]))
    return meta


def tokenizer_metadata(folder, config):
    path = os.path.join(folder, "tokenizer.json")
    if not os.path.exists(path):  # golden fixtures hold weights only
        return []
    tok = json.load(open(path))
    if tok["model"]["type"] == "WordPiece":
        return wordpiece_metadata(tok, config)
    vocab = dict(tok["model"]["vocab"])
    types = {}
    for added in tok.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
        types[added["id"]] = 3 if added.get("special") else 4  # CONTROL / USER_DEFINED
    tokens = [None] * (max(vocab.values()) + 1)
    for t, i in vocab.items():
        tokens[i] = t
    if any(t is None for t in tokens):
        raise SystemExit(f"{path}: vocabulary ids are not contiguous")
    merges = [m if isinstance(m, str) else f"{m[0]} {m[1]}" for m in tok["model"]["merges"]]
    meta = [("tokenizer.ggml.model", STRING, "gpt2"),
            ("tokenizer.ggml.pre", STRING, pre_tokenizer_name(tok["pre_tokenizer"], path)),
            ("tokenizer.ggml.tokens", (ARRAY, STRING), tokens),
            ("tokenizer.ggml.token_type", (ARRAY, INT32), [types.get(i, 1) for i in range(len(tokens))]),
            ("tokenizer.ggml.merges", (ARRAY, STRING), merges),
            ("tokenizer.ggml.add_bos_token", BOOL, False)]
    for key, field in (("bos", "bos_token_id"), ("eos", "eos_token_id")):
        if isinstance(config.get(field), int):
            meta.append((f"tokenizer.ggml.{key}_token_id", UINT32, config[field]))
    template = chat_template(folder)
    if template is not None:
        meta.append(("tokenizer.chat_template", STRING, template))
    return meta


def chat_template(folder):
    """The folder's chat template, stored as tokenizer.chat_template as llama.cpp's converter does."""
    jinja = os.path.join(folder, "chat_template.jinja")
    if os.path.exists(jinja):
        return open(jinja, encoding="utf-8").read()
    config = os.path.join(folder, "tokenizer_config.json")
    template = json.load(open(config)).get("chat_template") if os.path.exists(config) else None
    return template if isinstance(template, str) else None


def spm_metadata(model_path):
    """tokenizer.model is a protobuf ModelProto; field 1 holds the pieces
    (piece = 1: string, score = 2: float, type = 3: enum, default NORMAL = 1)."""
    data = open(model_path, "rb").read()

    def varint(buf, pos):
        value = shift = 0
        while True:
            byte = buf[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, pos

    def fields(buf):
        pos = 0
        while pos < len(buf):
            key, pos = varint(buf, pos)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, pos = varint(buf, pos)
            elif wire == 1:
                value, pos = buf[pos:pos + 8], pos + 8
            elif wire == 2:
                n, pos = varint(buf, pos)
                value, pos = buf[pos:pos + n], pos + n
            elif wire == 5:
                value, pos = buf[pos:pos + 4], pos + 4
            else:
                raise SystemExit(f"{model_path}: unexpected protobuf wire type {wire}")
            yield number, value

    tokens, scores, types = [], [], []
    for number, value in fields(data):
        if number != 1:
            continue
        piece, score, kind = "", 0.0, 1
        for n, v in fields(value):
            if n == 1:
                piece = v.decode("utf-8")
            elif n == 2:
                (score,) = struct.unpack("<f", v)
            elif n == 3:
                kind = v
        tokens.append(piece)
        scores.append(score)
        types.append(kind)
    return [("general.architecture", STRING, "llama"),
            ("tokenizer.ggml.model", STRING, "llama"),
            ("tokenizer.ggml.tokens", (ARRAY, STRING), tokens),
            ("tokenizer.ggml.scores", (ARRAY, FLOAT32), scores),
            ("tokenizer.ggml.token_type", (ARRAY, INT32), types),
            ("tokenizer.ggml.bos_token_id", UINT32, tokens.index("<s>")),
            ("tokenizer.ggml.eos_token_id", UINT32, tokens.index("</s>")),
            ("tokenizer.ggml.unknown_token_id", UINT32, tokens.index("<unk>"))]


# ---------------------------------------------------------------- the container
SCALAR = {UINT8: "B", INT8: "b", UINT16: "H", INT16: "h", UINT32: "I", INT32: "i", FLOAT32: "f", BOOL: "?",
          UINT64: "Q", INT64: "q", FLOAT64: "d"}


def pack_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def pack_value(kind, value):
    if kind == STRING:
        return pack_string(value)
    return struct.pack("<" + SCALAR[kind], value)


def pack_kv(key, kind, value):
    out = pack_string(key)
    if isinstance(kind, tuple):  # (ARRAY, element type)
        out += struct.pack("<IIQ", ARRAY, kind[1], len(value))
        if kind[1] == STRING:
            out += b"".join(pack_string(v) for v in value)
        else:
            out += struct.pack(f"<{len(value)}{SCALAR[kind[1]]}", *value)
        return out
    return out + struct.pack("<I", kind) + pack_value(kind, value)


def write_gguf(path, metadata, tensors):
    """tensors: list of (name, shape [slowest..fastest], ggml type name, bytes)."""
    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    header += b"".join(pack_kv(*kv) for kv in metadata)
    offset, infos = 0, b""
    for name, shape, kind, data in tensors:
        ne = list(reversed(shape))  # GGUF lists dimensions fastest-first
        infos += pack_string(name) + struct.pack(f"<I{len(ne)}QIQ", len(ne), *ne, GGML[kind], offset)
        offset += (len(data) + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
    partial = f"{path}.{os.getpid()}.partial"  # renamed into place whole: readers never see half a file
    with open(partial, "wb") as f:
        f.write(header + infos)
        f.write(b"\0" * (-f.tell() % ALIGNMENT))
        for _, _, _, data in tensors:
            f.write(data)
            f.write(b"\0" * (-len(data) % ALIGNMENT))
    os.replace(partial, path)


def convert_model(args):
    config = json.load(open(os.path.join(args.folder, "config.json")))
    hf = read_weights(args.folder)
    tensors, sidecar = [], None
    for name, shape, values in convert_tensors(config, hf):
        if name == args.drop_tensor:
            continue
        # Like llama.cpp, 1-D tensors (norms, biases) stay F32; matrices take the requested type.
        kind = args.type if len(shape) == 2 else "f32"
        if args.round_to and len(shape) == 2:  # the values a reader of a --type ROUND_TO file decodes
            values = encode_tensor(values, args.round_to)[1]
        data, decoded = encode_tensor(values, kind)
        tensors.append((name, shape, kind, data))
        if name == args.sidecar_tensor:
            sidecar = decoded
    metadata = [("general.name", STRING, os.path.basename(os.path.normpath(args.folder)))]
    metadata += model_metadata(config, args.folder) + tokenizer_metadata(args.folder, config)
    metadata = [kv for kv in metadata if kv[0] != args.drop_key]
    if args.sidecar:  # written first: the model file's appearance means both are complete
        if sidecar is None:
            raise SystemExit(f"no tensor named {args.sidecar_tensor}")
        with open(args.sidecar + f".{os.getpid()}.partial", "wb") as f:
            f.write(sidecar.tobytes())
        os.replace(args.sidecar + f".{os.getpid()}.partial", args.sidecar)
    write_gguf(args.out, metadata, tensors)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("model")
    m.add_argument("folder")
    m.add_argument("out")
    m.add_argument("--type", choices=sorted(GGML), default="f32")
    m.add_argument("--sidecar-tensor", default="blk.0.ffn_down.weight")
    m.add_argument("--sidecar")
    m.add_argument("--round-to", choices=sorted(GGML), help="store matrices as --type, after rounding them "
                   "through this type's quantizer (a file that decodes exactly as a ROUND_TO file does)")
    m.add_argument("--drop-key", help="leave this metadata key out")
    m.add_argument("--drop-tensor", help="leave this tensor out")
    s = sub.add_parser("spm")
    s.add_argument("model")
    s.add_argument("out")
    args = parser.parse_args()
    if args.command == "model":
        convert_model(args)
    else:
        write_gguf(args.out, spm_metadata(args.model), [])


if __name__ == "__main__":
    sys.exit(main())
