#!/usr/bin/env python3
"""brisk's ONNX exports loaded by Python's onnx, onnxruntime and transformers (run on the GPU machine,
where they are installed; the result is committed under bench/results/).

Each case names an export folder and its reference: a Hugging Face folder that transformers runs
(PyTorch, fp32, on the GPU when there is one) or another export of the same weights (for quantized
graphs: the fp32 export of the same brisk model). For each case:
  - onnx.checker.check_model(full_check=True) accepts the graph;
  - transformers' AutoConfig (and AutoTokenizer, when the folder has tokenizer files) loads the folder;
  - onnxruntime's logits for a prompt, whole and then token by token through past_key_values, are
    compared with the reference's (relative L2), and the greedy continuations (32 tokens) too.

  python3 tests/export/onnx_python_check.py --case NAME:EXPORT_DIR:REFERENCE [...] --out result.json
REFERENCE is hf:DIR or onnx:DIR.
"""
import argparse
import json
import os
import platform
import sys

import numpy as np
import onnx
import onnxruntime as ort


def rel_l2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def model_file(folder):
    """The folder's graph, onnx/model<suffix>.onnx (transformers.js's names)."""
    files = sorted(f for f in os.listdir(os.path.join(folder, "onnx")) if f.endswith(".onnx"))
    if len(files) != 1:
        raise SystemExit(f"{folder}/onnx: expected one .onnx file, found {files}")
    return os.path.join(folder, "onnx", files[0])


class OnnxDecoder:
    def __init__(self, folder):
        from transformers import AutoConfig
        c = AutoConfig.from_pretrained(folder)  # maps GPT-2's n_layer / n_head / n_embd too
        self.layers = c.num_hidden_layers
        self.kv_heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
        self.head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.session = ort.InferenceSession(model_file(folder), providers=["CPUExecutionProvider"])

    def run(self, tokens, start, past):
        total = start + len(tokens)
        feeds = {
            "input_ids": np.array([tokens], np.int64),
            "attention_mask": np.ones((1, total), np.int64),
            "position_ids": np.arange(start, total, dtype=np.int64)[None, :],
        }
        for l in range(self.layers):
            for kv in ("key", "value"):
                name = f"past_key_values.{l}.{kv}"
                feeds[name] = past[f"present.{l}.{kv}"] if past else np.zeros((1, self.kv_heads, 0, self.head_dim),
                                                                                np.float32)
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, feeds)))

    def logits(self, ids):
        return self.run(ids, 0, None)["logits"][0]

    def stepped_logits(self, ids, split):
        out = self.run(ids[:split], 0, None)
        rows = list(out["logits"][0])
        for t in range(split, len(ids)):
            out = self.run([ids[t]], t, out)
            rows.append(out["logits"][0, -1])
        return np.stack(rows)

    def greedy(self, ids, n):
        out = self.run(ids, 0, None)
        got = [int(out["logits"][0, -1].argmax())]
        while len(got) < n:
            out = self.run([got[-1]], len(ids) + len(got) - 1, out)
            got.append(int(out["logits"][0, -1].argmax()))
        return got


class HfModel:
    def __init__(self, folder):
        import torch
        from transformers import AutoModelForCausalLM
        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(self.device).eval()

    def logits(self, ids):
        with self.torch.no_grad():
            x = self.torch.tensor([ids], device=self.device)
            return self.model(x).logits[0].float().cpu().numpy()

    def greedy(self, ids, n):
        with self.torch.no_grad():
            x = self.torch.tensor([ids], device=self.device)
            out = self.model.generate(x, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
            return [int(t) for t in out[0, len(ids):]]


def prompt_ids(folder, vocab):
    """The prompt through the folder's tokenizer (transformers' AutoTokenizer), or fixed ids."""
    if os.path.exists(os.path.join(folder, "tokenizer.json")):
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(folder)
        return tok("The state of the union is strong, and the people", add_special_tokens=True)["input_ids"], True
    rng = np.random.default_rng(7)
    return [int(i) for i in rng.integers(0, vocab, 40)], False


def check_encoder(name, folder, reference, config):
    """BERT: a padded batch of 4 sequences; last_hidden_state (or a classifier's logits) vs transformers."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification
    path = model_file(folder)
    rng = np.random.default_rng(11)
    lengths = [14, 9, 12, 5]
    ids = np.zeros((4, max(lengths)), np.int64)
    mask = np.zeros_like(ids)
    for b, n in enumerate(lengths):
        ids[b, :n] = rng.integers(5, config.vocab_size, n)
        mask[b, :n] = 1
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out_name = session.get_outputs()[0].name
    got = session.run([out_name], {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
    cls = AutoModelForSequenceClassification if out_name == "logits" else AutoModel
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = cls.from_pretrained(reference.split(":", 1)[1], dtype=torch.float32).to(device).eval()
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids, device=device), attention_mask=torch.tensor(mask, device=device))
    want = (out.logits if out_name == "logits" else out.last_hidden_state).float().cpu().numpy()
    if out_name == "last_hidden_state":  # padding rows are not compared
        got = np.concatenate([got[b, :n] for b, n in enumerate(lengths)])
        want = np.concatenate([want[b, :n] for b, n in enumerate(lengths)])
    result = {"export": folder, "reference": reference, "onnx_bytes": os.path.getsize(path), "output": out_name,
              "model_type": config.model_type, "batch": lengths, "rel_l2": rel_l2(got, want)}
    print(name, json.dumps(result), flush=True)
    return result


def check(name, folder, reference):
    from transformers import AutoConfig
    path = model_file(folder)
    onnx.checker.check_model(path, full_check=True)
    config = AutoConfig.from_pretrained(folder)
    if config.model_type == "bert":
        return check_encoder(name, folder, reference, config)
    ids, tokenized = prompt_ids(folder, config.vocab_size)
    kind, ref_dir = reference.split(":", 1)
    ref = HfModel(ref_dir) if kind == "hf" else OnnxDecoder(ref_dir)
    dec = OnnxDecoder(folder)
    want = ref.logits(ids)
    result = {
        "export": folder, "reference": reference, "onnx_bytes": os.path.getsize(path),
        "ops": sorted({f"{n.domain + '.' if n.domain else ''}{n.op_type}" for n in onnx.load(path, load_external_data=False).graph.node}),
        "model_type": config.model_type, "prompt_tokens": len(ids), "tokenizer_loaded": tokenized,
        "logits_rel_l2": rel_l2(dec.logits(ids), want),
        "stepped_logits_rel_l2": rel_l2(dec.stepped_logits(ids, len(ids) // 2), want),
    }
    got, expect = dec.greedy(ids, 32), ref.greedy(ids, 32)
    result["greedy_equal"] = got == expect
    result["greedy_first_difference"] = next((i for i, (a, b) in enumerate(zip(got, expect)) if a != b), None)
    print(name, json.dumps(result), flush=True)
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", action="append", required=True, help="NAME:EXPORT_DIR:hf:DIR or NAME:EXPORT_DIR:onnx:DIR")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    import torch
    import transformers
    results = {}
    for case in a.case:
        name, folder, reference = case.split(":", 2)
        try:
            results[name] = check(name, folder, reference)
        except Exception as e:  # one broken case is reported, the others still run
            results[name] = {"error": f"{type(e).__name__}: {e}"}
            print(name, "ERROR", e, file=sys.stderr, flush=True)
    doc = {
        "what": "brisk export --format onnx loaded by Python onnx (checker), transformers (config, tokenizer) and "
                "onnxruntime (CPU, default session options); logits vs transformers (PyTorch fp32, GPU) or vs the "
                "fp32 export of the same weights",
        "machine": platform.node(), "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "versions": {"onnx": onnx.__version__, "onnxruntime": ort.__version__, "transformers": transformers.__version__,
                     "torch": torch.__version__},
        "command": "tests/export/onnx_python_check.sh",
        "cases": results,
    }
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
