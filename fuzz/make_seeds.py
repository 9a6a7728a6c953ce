#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz harnesses, fuzz/corpus/<harness>/: small valid inputs
trimmed from the repository's fixtures and ../shared/models/sotu-llama, and the hostile inputs
brisk once failed on (each also has a regression test). Standard library only; tests/gguf_writer.py
writes the GGUF files. The output is committed; rerun after changing this script:

    python3 fuzz/make_seeds.py
"""
import gzip
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
SOTU_LLAMA = os.path.join(ROOT, "..", "shared", "models", "sotu-llama")
sys.path.insert(0, os.path.join(ROOT, "tests"))
import gguf_writer as gw  # noqa: E402  (the tests' GGUF writer: one implementation of the container)

# Byte-level BPE keeps the tokens spelled with these characters (lowercase letters, digits, some
# punctuation and GPT-2's stand-ins for space and newline) and merges among them: enough to merge
# common words while the seeds stay a few KB.
BYTE_LEVEL_ALPHABET = set("abcdefghijklmnopqrstuvwxyz0123456789.,!'") | {"\u0120", "\u010a"}
MAX_MERGES = 30
# The tokenizer seeds built on the smallest vocabulary keep these tokens and merges.
MINI_ALPHABET = set("abxy") | {"\u0120", "\u010a"}
MINI_MERGES = 4
# A run of spaces that makes the whitespace alternatives backtrack (the PCRE2 match-limit bug
# needed ~10M characters; a seed only points the fuzzer there).
WHITESPACE_RUN = 512
JINJA_CHAIN_LINKS = 130  # past the parser's nesting limit of 128, far below the 20,000 that crashed
INT32_MAX = 2**31 - 1


def dump(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def write_corpus(harness, seeds):
    folder = os.path.join(CORPUS, harness)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name, data in seeds.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())


# ---------------------------------------------------------------------------------- safetensors
def safetensors_bytes(header, data=b"", length_delta=0):
    text = header if isinstance(header, bytes) else dump(header)
    return struct.pack("<Q", len(text) + length_delta) + text + data


def f32_entry(elements, begin):
    return {"dtype": "F32", "shape": [elements], "data_offsets": [begin, begin + 4 * elements]}


def safetensors_seeds():
    two = {"a": f32_entry(2, 0), "b": f32_entry(2, 8)}
    data16 = struct.pack("<4f", 1.0, -2.0, 0.5, 3.0)
    return {
        "two_tensors": safetensors_bytes({"__metadata__": {"format": "pt"}, **two}, data16),
        "bf16_matrix": safetensors_bytes({"m": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}},
                                         bytes(range(12))),
        "empty": safetensors_bytes({}),
        "overflow_f32_2p62": safetensors_bytes({"a": {"dtype": "F32", "shape": [2**62], "data_offsets": [0, 0]}}),
        "overflow_u8_2p63": safetensors_bytes({"a": {"dtype": "U8", "shape": [2**63], "data_offsets": [0, 0]}}),
        "overlapping_offsets": safetensors_bytes({"a": f32_entry(2, 0), "b": f32_entry(2, 4)}, bytes(12)),
        "aliased_offsets": safetensors_bytes({"a": f32_entry(2, 0), "b": f32_entry(2, 0)}, bytes(8)),
        "duplicate_name": safetensors_bytes(b'{"a":%s,"a":%s}' % (dump(f32_entry(2, 0)), dump(f32_entry(2, 8))),
                                            bytes(16)),
        "header_length_minus_one": safetensors_bytes(dump(two) + b"  ", data16, length_delta=-1),
        "header_length_plus_one": safetensors_bytes(dump(two), data16, length_delta=1),
    }


# ---------------------------------------------------------------------------------- tokenizers
def trimmed_tokenizer(tok, keep, max_merges):
    """tok with only the vocabulary entries keep(token) accepts (added tokens always stay), ids
    renumbered contiguously in their old order, and the first max_merges merges among them."""
    model = tok["model"]
    added = {a["id"]: a for a in tok.get("added_tokens", [])}
    by_id = {i: t for t, i in model["vocab"].items() if keep(t) or i in added}
    by_id.update({i: a["content"] for i, a in added.items()})
    new_id = {old: new for new, old in enumerate(sorted(by_id))}
    vocab = {by_id[old]: new for old, new in new_id.items()}
    out = dict(tok, model=dict(model, vocab=vocab))
    out["added_tokens"] = [dict(a, id=new_id[i]) for i, a in added.items()]
    if "merges" in model:
        pairs = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]
        out["model"]["merges"] = [p for p in pairs if p[0] in vocab and p[1] in vocab and p[0] + p[1] in vocab]
        out["model"]["merges"] = out["model"]["merges"][:max_merges]
    for key in ("truncation", "padding"):
        out.pop(key, None)
    return out


def over_alphabet(tok, alphabet, max_merges, extra=()):
    """tok's single characters of `alphabet`, what its first max_merges merges make, and `extra`."""
    merged = {(m if isinstance(m, str) else " ".join(m)).replace(" ", "") for m in tok["model"]["merges"][:max_merges]}
    return trimmed_tokenizer(tok, lambda t: (len(t) == 1 and t in alphabet) or t in merged or t in extra, max_merges)


def byte_level_tokenizer(alphabet, max_merges):
    """sotu-llama's tokenizer (Llama-3 Split regex, ByteLevel) over a few characters."""
    return over_alphabet(json.load(open(os.path.join(SOTU_LLAMA, "tokenizer.json"))), alphabet, max_merges)


def tokenizer_seeds(byte_level):
    mini = byte_level_tokenizer(MINI_ALPHABET, MINI_MERGES)
    spm = json.load(open(os.path.join(FIXTURES, "tokenizer", "spm-bpe-metaspace", "tokenizer.json")))
    spm = over_alphabet(spm, MINI_ALPHABET | {"\u2581", "t", "h", "e"}, MINI_MERGES, extra=("<0x41>", "<0xC3>"))
    bert = json.load(open(os.path.join(FIXTURES, "golden", "bert", "tokenizer.json")))
    bert = trimmed_tokenizer(bert, lambda t: (len(t) == 1 and not t.isupper()) or t in ("the", "##s", "hello"), 0)
    # Exponential backtracking on "aaa...b" and nested quantifiers over whitespace.
    split = {"type": "Split", "pattern": {"Regex": "(a|aa)+$|(\\s*)*x"}, "behavior": "Isolated", "invert": False}
    backtracking = dict(mini, pre_tokenizer={"type": "Sequence", "pretokenizers": [
        split, {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]})
    huge_id = dict(mini, added_tokens=mini["added_tokens"] + [
        {"id": INT32_MAX, "content": "<|huge|>", "special": True, "normalized": False}])
    return {
        "byte_level_bpe": dump(byte_level),
        "byte_level_whitespace_run": dump(mini) + b"\0x" + b" " * WHITESPACE_RUN + b"\r\n y",
        "sentencepiece_bpe": dump(spm) + "\0Hello \u2581 w\u00f6rld <s>".encode(),
        "wordpiece": dump(bert) + b"\0Hello, the [CLS] words!",
        "backtracking_regex": dump(backtracking) + b"\0" + b"a" * 40 + b"b",
        "added_token_id_int32_max": dump(huge_id) + b"\0a <|huge|> b",
    }


# ---------------------------------------------------------------------------------- GGUF
def tiny_llama_config(vocab_size):
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4,
            "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "vocab_size": vocab_size,
            "tie_word_embeddings": True, "bos_token_id": 0, "eos_token_id": 0,
            "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}}


def tiny_llama_tensors(config):
    h, ff, kv = config["hidden_size"], config["intermediate_size"], config["hidden_size"] // 2
    shapes = {"model.embed_tokens.weight": [config["vocab_size"], h], "model.norm.weight": [h]}
    prefix = "model.layers.0."
    shapes.update({prefix + "input_layernorm.weight": [h], prefix + "post_attention_layernorm.weight": [h],
                   prefix + "self_attn.q_proj.weight": [h, h], prefix + "self_attn.k_proj.weight": [kv, h],
                   prefix + "self_attn.v_proj.weight": [kv, h], prefix + "self_attn.o_proj.weight": [h, h],
                   prefix + "mlp.gate_proj.weight": [ff, h], prefix + "mlp.up_proj.weight": [ff, h],
                   prefix + "mlp.down_proj.weight": [h, ff]})
    rng = random.Random(0)
    header, data = {}, b""
    for name, shape in sorted(shapes.items()):
        count = 1
        for d in shape:
            count *= d
        values = struct.pack(f"<{count}e", *[rng.uniform(-0.5, 0.5) for _ in range(count)])
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [len(data), len(data) + len(values)]}
        data += values
    return safetensors_bytes(header, data)


def tiny_llama_gguf(byte_level):
    with tempfile.TemporaryDirectory() as scratch:
        folder = os.path.join(scratch, "tiny-llama")  # the writer records the folder's name
        os.makedirs(folder)
        config = tiny_llama_config(len(byte_level["model"]["vocab"]))
        for name, data in (("config.json", dump(config)), ("tokenizer.json", dump(byte_level)),
                           ("model.safetensors", tiny_llama_tensors(config))):
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
        out = os.path.join(folder, "model.gguf")
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "gguf_writer.py"), "model", folder, out,
                        "--type", "f16"], check=True)
        return open(out, "rb").read()


def gguf_bytes(metadata, tensors):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "x.gguf")
        gw.write_gguf(path, metadata, tensors)
        return open(path, "rb").read()


def gguf_seeds(byte_level):
    # The block formats brisk decodes, as ggml numbers them, with their block sizes (values, bytes).
    blocks = {"q4_0": (2, 32, 18), "q8_0": (8, 32, 34), "q4_K": (12, 256, 144), "q5_K": (13, 256, 176),
              "q6_K": (14, 256, 210)}
    gw.GGML.update({name: ggml_id for name, (ggml_id, _, _) in blocks.items()})
    rng = random.Random(1)
    quantized = [(name, [values], name, bytes(rng.randrange(256) for _ in range(size)))
                 for name, (_, values, size) in blocks.items()]
    one_f32 = [("weights", [8], "f32", struct.pack("<8f", *range(8)))]
    arch = [("general.architecture", gw.STRING, "llama")]
    spm_tokens = ["<unk>", "<s>", "</s>", "<0x41>", "\u2581", "\u2581a", "a", "b", "ab"]
    spm = [("tokenizer.ggml.model", gw.STRING, "llama"), ("tokenizer.ggml.tokens", (gw.ARRAY, gw.STRING), spm_tokens),
           ("tokenizer.ggml.scores", (gw.ARRAY, gw.FLOAT32), [-float(i) for i in range(len(spm_tokens))]),
           ("tokenizer.ggml.token_type", (gw.ARRAY, gw.INT32), [2, 3, 3, 6, 1, 1, 1, 1, 1])]
    return {
        "tiny_llama_f16_with_tokenizer": tiny_llama_gguf(byte_level),
        "block_quant_tensors": gguf_bytes(arch, quantized),
        "sentencepiece_tokenizer_only": gguf_bytes(spm, []),
        "alignment_zero": gguf_bytes(arch + [("general.alignment", gw.INT32, 0)], one_f32),
        "alignment_not_power_of_two": gguf_bytes(arch + [("general.alignment", gw.UINT32, 48)], one_f32),
        "truncated": gguf_bytes(arch, one_f32)[:40],
    }


# ---------------------------------------------------------------------------------- config.json
def model_config_seeds():
    def fixture(*parts):
        return json.load(open(os.path.join(*parts, "config.json")))

    sotu = fixture(SOTU_LLAMA)
    weights = {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "group", "group_size": 128}
    quantized = dict(sotu, quantization_config={
        "quant_method": "compressed-tensors", "format": "pack-quantized", "ignore": ["lm_head"],
        "config_groups": {"group_0": {"targets": ["Linear"], "weights": weights},
                          "group_1": {"targets": ["re:.*down_proj"], "format": "float-quantized", "weights": dict(
                              weights, num_bits=8, type="float", strategy="channel")}}})
    seeds = {name: dump(fixture(FIXTURES, "golden", name))
             for name in ("gpt2", "gemma3", "bert", "llama3-rope", "phi3-longrope")}
    seeds.update({
        "sotu_llama": dump(sotu),
        "quantized_w4_groups": dump(quantized),
        "quantization_symmetric_null": dump(dict(quantized, quantization_config=dict(
            quantized["quantization_config"], config_groups={"g": {"targets": ["Linear"],
                                                                   "weights": dict(weights, symmetric=None)}}))),
        "quantization_format_number": dump(dict(quantized, quantization_config=dict(
            quantized["quantization_config"], format=0))),
    })
    return seeds


# ---------------------------------------------------------------------------------- chat templates
def chat_template_seeds():
    chat = os.path.join(FIXTURES, "chat")
    seeds = {name: open(os.path.join(chat, name + ".jinja"), "rb").read()
             for name in ("chatml", "llama-3-instruct", "mistral-7b-instruct-v0.3", "qwen2.5-instruct", "gemma-it")}
    for name, first, link in (("plus", "1", " + 1"), ("concat", "'a'", " ~ 'a'"), ("filter", "'a'", " | trim"),
                              ("attribute", "x", ".a")):
        seeds["chain_" + name] = "{{ " + first + link * JINJA_CHAIN_LINKS + " }}"
    seeds["parentheses"] = "{{ " + "(" * JINJA_CHAIN_LINKS + "1" + ")" * JINJA_CHAIN_LINKS + " }}"
    seeds["macro_recursion"] = "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}"
    seeds["step_budget"] = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    seeds["huge_repeat"] = "{{ 'x' * 100000000000 }}"
    return seeds


# ---------------------------------------------------------------------------------- grammars
def grammar_seeds():
    """A first byte 0 (GBNF) or 1 (JSON Schema), then the text."""
    gbnf = {
        "json_like": 'root ::= "{" ws pair ("," ws pair)* "}"\npair ::= [a-z]+ ":" ws [0-9]{1,3}\nws ::= [ \\t\\n]*\n',
        "classes": 'root ::= [^"\\\\]* "\\"" . [\\u4e00-\\u4e01] "\\x41"\n',
        "ambiguous": 'root ::= x\nx ::= "a" x "b" | "a" x "c" | ""\n',
        "left_recursive": 'root ::= root "a" | "b"\n',
        "repeats": 'root ::= ("ab"){2,5} "c"? [0-9]+ (("x" | "y"){0,3})*\n',
        "nested_groups": "root ::= " + "(" * 40 + '"a"' + ")" * 40 + "\n",
    }
    schemas = {
        "object": {"type": "object", "properties": {"a": {"type": "string", "maxLength": 4},
                   "b": {"type": "array", "items": {"type": "integer"}, "maxItems": 3}}, "required": ["a"]},
        "refs": {"$defs": {"n": {"type": "object", "properties": {"k": {"$ref": "#/$defs/n"}}}},
                 "anyOf": [{"$ref": "#/$defs/n"}, {"enum": ["x", 1, None]}]},
        "formats": {"type": "array", "prefixItems": [{"format": "date-time"}, {"format": "uuid"}], "items": False},
        "extra_keys": {"type": "object", "properties": {"id": {"type": "integer"}},
                       "additionalProperties": {"type": "boolean"}},
    }
    seeds = {"gbnf_" + name: b"\0" + text.encode() for name, text in gbnf.items()}
    seeds.update({"schema_" + name: b"\1" + dump(schema) for name, schema in schemas.items()})
    return seeds


# ---------------------------------------------------------------------------------- HTTP requests
def http_request(path, body, headers=()):
    head = [f"POST {path} HTTP/1.1", "Host: localhost", "Content-Type: application/json", *headers]
    if not any(h.lower().startswith("transfer-encoding") for h in headers):
        head.append(f"Content-Length: {len(body)}")
    return "\r\n".join(head).encode() + b"\r\n\r\n" + body


def chunked(body, size):
    pieces = [body[i:i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def http_request_seeds():
    completion = dump({"model": "m", "prompt": "Hello", "max_tokens": 5, "stop": ["x"], "logprobs": 2, "n": 2})
    chat = dump({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "stream": True,
                 "stream_options": {"include_usage": True}, "top_logprobs": 1, "logprobs": True})
    bomb = gzip.compress(b"\0" * (1 << 20), mtime=0)  # 1 MiB of zeros in ~1 KB; past the bound needs 32 KB
    return {
        "completion": http_request("/v1/completions", completion),
        "chat_chunked": http_request("/v1/chat/completions", chunked(chat, 16), ["Transfer-Encoding: chunked"]),
        "embeddings_gzip": http_request("/v1/embeddings", gzip.compress(dump({"input": ["a", [1, 2]]}), mtime=0),
                                        ["Content-Encoding: gzip"]),
        "completion_deflate": http_request("/v1/completions", zlib.compress(completion), ["Content-Encoding: deflate"]),
        "gzip_bomb": http_request("/v1/completions", bomb, ["Content-Encoding: gzip"]),
        "invalid_utf8": http_request("/v1/completions", b'{"prompt": "ok\xff\xc3(", "suffix": "\xed\xa0\x80"}'),
        "huge_numbers": http_request("/v1/completions",
                                     b'{"prompt": "x", "max_tokens": 1e999, "temperature": -0.0, '
                                     b'"n": 18446744073709551615}'),
        "token_id_int32_max": http_request("/v1/completions", dump({"prompt": [[INT32_MAX, 0]]})),
        "chunk_size_overflow": http_request("/v1/completions", b"ffffffffffffffff\r\nx\r\n0\r\n\r\n",
                                            ["Transfer-Encoding: chunked"]),
        "unknown_encoding": http_request("/v1/completions", completion, ["Content-Encoding: br"]),
    }


def main():
    byte_level = byte_level_tokenizer(BYTE_LEVEL_ALPHABET, MAX_MERGES)
    write_corpus("safetensors", safetensors_seeds())
    write_corpus("tokenizer", tokenizer_seeds(byte_level))
    write_corpus("gguf", gguf_seeds(byte_level))
    write_corpus("model_config", model_config_seeds())
    write_corpus("chat_template", chat_template_seeds())
    write_corpus("grammar", grammar_seeds())
    write_corpus("http_request", http_request_seeds())
    for harness in sorted(os.listdir(CORPUS)):
        folder = os.path.join(CORPUS, harness)
        sizes = [os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)]
        print(f"{harness}: {len(sizes)} seeds, {sum(sizes)} bytes")


if __name__ == "__main__":
    main()
