"""`brisk export --format gguf` checked by implementations brisk does not share: the files are read back
by tests/gguf_reader.py (a second GGUF reader and block decoder, written from the spec) and compared
with what tests/gguf_writer.py (an emulation of llama.cpp's converter) writes for the same folder:
metadata, tensor names, layouts and values. The exported files must also generate what
transformers generated, and keep the perplexity each type should keep."""
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import unittest

from brisk_cli import MODELS, SHARED, brisk, brisk_json, model_dir

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_reader  # noqa: E402
import gguf_writer  # noqa: E402

FIXTURES = os.environ["BRISK_FIXTURES_DIR"]
with open(os.path.join(FIXTURES, "reference", "shared-models.json")) as f:
    REFERENCE = json.load(f)
TEXT = os.path.join(SHARED, "data", "text", "sotu-test.txt")


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def rms(values):
    return math.sqrt(sum(v * v for v in values) / max(1, len(values)))


class ExportGguf(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        # A slice of the test text: perplexities here compare types, not the whole set.
        cls.text = os.path.join(cls.tmp.name, "slice.txt")
        with open(TEXT, encoding="utf-8") as src, open(cls.text, "w", encoding="utf-8") as dst:
            dst.write(src.read(12000))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def export(self, model, name, *args):
        out = os.path.join(self.tmp.name, name)
        report = brisk_json("export", "-m", model, "-o", out, *args)
        self.assertEqual(report["out"], out)
        self.assertEqual(os.path.getsize(out), report["bytes"])
        return out, report

    def ppl(self, model):
        return brisk_json("perplexity", "-m", model, "-f", self.text, "--ctx", "256")["ppl"]

    def test_bf16_files_equal_the_independent_converters(self):
        for model in MODELS:
            with self.subTest(model=model):
                folder = model_dir(model)
                out, report = self.export(folder, f"{model}-bf16.gguf", "--dtype", "bf16")
                config = read_json(os.path.join(folder, "config.json"))
                got = gguf_reader.GgufFile(out)
                want = gguf_writer.model_metadata(config, folder) + gguf_writer.tokenizer_metadata(folder, config)
                for key, kind, value in want:
                    self.assertIn(key, got.metadata)
                    if key == "tokenizer.ggml.pre":
                        # The writer names the llama.cpp type by regex alone; brisk also matches
                        # ignore_merges (false here), which llama-bpe sets: the same split, another row.
                        self.assertEqual(got.metadata[key], {"llama-bpe": "dbrx"}.get(value, value))
                    elif key == "tokenizer.ggml.add_bos_token":
                        continue  # the writer always says no; tokenizing the export checks brisk's answer
                    elif kind == gguf_writer.FLOAT32:
                        self.assertEqual(got.metadata[key], f32(value), key)
                    else:
                        self.assertEqual(got.metadata[key], value, key)
                self.assertEqual(got.metadata["general.architecture"], report["architecture"])
                tensors = {name: (shape, values) for name, shape, values in
                           gguf_writer.convert_tensors(config, gguf_writer.read_weights(folder))}
                self.assertEqual(sorted(got.tensors), sorted(tensors))
                for name, (shape, values) in tensors.items():
                    self.assertEqual(got.tensors[name][0], list(shape), name)
                    kind = "BF16" if len(shape) == 2 else "F32"
                    self.assertEqual(got.type_name(name), kind, name)
                    if name.startswith("blk.0.") or not name.startswith("blk."):
                        self.assertEqual(got.values(name), list(values), name)  # bf16 in, bf16 out: exact

    def test_exports_generate_what_transformers_generated(self):
        for model in MODELS:
            case = REFERENCE[model]["greedy"][0]
            with self.subTest(model=model):
                out, _ = self.export(model_dir(model), f"{model}-auto.gguf")
                tok = brisk_json("tokenize", "-m", out, "--text", case["prompt"], "--add-special")
                self.assertEqual(tok["ids"], case["prompt_ids"])
                gen = brisk_json("generate", "-m", out, "-p", case["prompt"], "-n", "64", "--temp", "0", "--ignore-eos")
                self.assertEqual(gen["ids"], case["new_ids"])

    def test_each_type_decodes_near_the_weights_and_keeps_the_perplexity(self):
        # sotu-qwen2: hidden 256, so its q/k/v/o/gate/up rows are whole K-quant super-blocks; the
        # down projection's rows of 704 fall back (Q4_K -> Q4_0, Q6_K -> Q8_0).
        folder = model_dir("sotu-qwen2")
        config = read_json(os.path.join(folder, "config.json"))
        weights = {name: values for name, shape, values in
                   gguf_writer.convert_tensors(config, gguf_writer.read_weights(folder))}
        base = self.ppl(folder)
        # type -> (its relative RMS error bound, perplexity bound, the fallback of 704-value rows)
        bounds = {"q8_0": (0.006, 1.002, "Q8_0"), "q6_k": (0.02, 1.01, "Q8_0"), "q4_k": (0.09, 1.05, "Q4_0"),
                  "q4_0": (0.12, 1.06, "Q4_0"), "f16": (1e-3, 1.001, "F16")}
        errors = {}
        for kind, (error_bound, ppl_bound, fallback) in bounds.items():
            with self.subTest(type=kind):
                out, report = self.export(folder, f"qwen2-{kind}.gguf", "--dtype", kind)
                got = gguf_reader.GgufFile(out)
                self.assertEqual(got.type_name("blk.0.attn_q.weight"), kind.upper())
                self.assertEqual(got.type_name("blk.0.ffn_down.weight"), fallback)
                self.assertEqual(got.type_name("blk.0.attn_norm.weight"), "F32")
                if fallback != kind.upper():
                    self.assertIn("blk.0.ffn_down.weight", report["fallbacks"][fallback])
                for name in ("blk.0.attn_q.weight", "blk.1.ffn_up.weight"):
                    want = weights[name]
                    diff = [a - b for a, b in zip(got.values(name), want)]
                    errors[(kind, name)] = rms(diff) / rms(want)
                    self.assertLess(errors[(kind, name)], error_bound, name)
                if kind in ("q8_0", "q4_0"):  # ggml's reference formulas: the writer's own quantizer agrees
                    encode = {"q8_0": gguf_writer.quantize_q8_0, "q4_0": gguf_writer.quantize_q4_0}[kind]
                    want = encode(weights["blk.0.attn_q.weight"])[1]
                    got_values = got.values("blk.0.attn_q.weight")
                    same = sum(a == b for a, b in zip(got_values, want))
                    self.assertGreater(same / len(want), 0.995)  # the writer rounds in double, half to even
                ppl = self.ppl(out)
                self.assertLess(ppl / base, ppl_bound, f"{kind}: {ppl} vs {base}")
                self.assertGreater(ppl / base, 1 / ppl_bound, f"{kind}: {ppl} vs {base}")
        for name in ("blk.0.attn_q.weight", "blk.1.ffn_up.weight"):  # the K-quant search beats plain RTN
            self.assertLess(errors[("q4_k", name)], errors[("q4_0", name)], name)

    def test_quantized_models_map_to_the_nearest_type(self):
        # sotu-llama: hidden 384, so only the down projection's rows (1024) are whole Q4_K blocks;
        # w4 gives its head 8 bits (--head auto), which stays 8-bit.
        for scheme, types in (("w8", {"blk.0.attn_q.weight": "Q8_0", "output.weight": "Q8_0"}),
                              ("w4", {"blk.0.ffn_down.weight": "Q4_K", "blk.0.attn_q.weight": "Q4_0",
                                      "output.weight": "Q8_0"})):
            with self.subTest(scheme=scheme):
                quantized = os.path.join(self.tmp.name, f"llama-{scheme}")
                brisk("quantize", "-m", model_dir("sotu-llama"), "-o", quantized, "--scheme", scheme)
                out, report = self.export(quantized, f"llama-{scheme}.gguf")
                self.assertEqual(report["dtype"], "auto (Q8_0)" if scheme == "w8" else "auto (Q4_K)")
                got = gguf_reader.GgufFile(out)
                for name, kind in types.items():
                    self.assertEqual(got.type_name(name), kind, name)
                self.assertEqual(got.type_name("token_embd.weight"), "BF16")  # quantize keeps the embedding
                ratio = self.ppl(out) / self.ppl(quantized)
                self.assertLess(abs(ratio - 1), 0.03, scheme)  # requantized blocks: near brisk's own

    def test_a_gguf_exports_again(self):
        first, _ = self.export(model_dir("sotu-llama"), "llama-again-bf16.gguf", "--dtype", "bf16")
        second, report = self.export(first, "llama-again-q8.gguf", "--dtype", "q8_0")
        a, b = gguf_reader.GgufFile(first), gguf_reader.GgufFile(second)
        for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.pre", "llama.rope.freq_base"):
            self.assertEqual(a.metadata[key], b.metadata[key], key)
        self.assertEqual(b.metadata["general.name"], "llama-again-bf16")
        gen = brisk_json("generate", "-m", second, "-p", "We the people", "-n", "4", "--temp", "0", "--ignore-eos")
        self.assertEqual(gen["new_tokens"], 4)

    def test_hostile_tokenizer_files_are_refused_naming_the_file(self):
        fixture = os.path.join(FIXTURES, "golden", "qwen2")
        folder = os.path.join(self.tmp.name, "hostile")
        os.makedirs(folder)
        for name in ("config.json", "model.safetensors"):
            shutil.copy(os.path.join(fixture, name), folder)
        good = read_json(os.path.join(model_dir("sotu-qwen2"), "tokenizer.json"))
        cases = {
            "truncated": json.dumps(good)[:5000],
            "deeply nested": "[" * 100000 + "]" * 100000,
            "model not an object": json.dumps({**good, "model": [1, 2]}),
            "id of the wrong type": json.dumps({**good, "model": {**good["model"], "vocab": {"a": "zero"}}}),
            "negative id": json.dumps({**good, "model": {**good["model"], "vocab": {"a": -1}}}),
            "huge id": json.dumps({**good, "model": {**good["model"], "vocab": {"a": 10 ** 12}}}),
            "ids with a gap": json.dumps({**good, "model": {**good["model"], "vocab": {"a": 0, "b": 2}}}),
            "merge of the wrong type": json.dumps({**good, "model": {**good["model"], "merges": [7]}}),
        }
        for case, text in cases.items():
            with self.subTest(case=case):
                with open(os.path.join(folder, "tokenizer.json"), "w") as f:
                    f.write(text)
                out = os.path.join(self.tmp.name, "hostile.gguf")
                p = brisk("export", "-m", folder, "-o", out, check=False)
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn("tokenizer.json", p.stderr)
                self.assertFalse(os.path.exists(out))

    def test_what_cannot_be_exported_is_refused_by_name(self):
        bert = os.path.join(self.tmp.name, "bert")
        brisk("synth", "--shape", "bert-mini", "-o", bert, "--dtype", "f32")
        factored = os.path.join(self.tmp.name, "lowrank")
        brisk("lowrank", "-m", model_dir("sotu-qwen2"), "-o", factored, "--method", "svd", "--rank-ratio", "0.5")
        exists = os.path.join(self.tmp.name, "exists.gguf")
        open(exists, "w").close()
        for args, message in ((["-m", model_dir("sotu-gpt2"), "--dtype", "q5_k"], "unknown GGUF type 'q5_k'"),
                              (["-m", model_dir("sotu-gpt2"), "--format", "tflite"], "unknown --format 'tflite'"),
                              (["-m", bert], "model_type 'bert'"),
                              (["-m", factored], "low-rank factored"),
                              (["-m", os.path.join(self.tmp.name, "missing")], "not a model folder")):
            with self.subTest(args=args):
                out = os.path.join(self.tmp.name, "refused.gguf")
                p = brisk("export", *args, "-o", out, check=False)
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn(message, p.stderr)
                self.assertFalse(os.path.exists(out))
        p = brisk("export", "-m", model_dir("sotu-gpt2"), "-o", exists, check=False)
        self.assertIn("already exists", p.stderr)
        self.assertEqual(os.path.getsize(exists), 0)
        leftovers = [n for n in os.listdir(self.tmp.name) if ".partial" in n]
        self.assertEqual(leftovers, [])


if __name__ == "__main__":
    unittest.main()
