"""The brisk CLI on .gguf files: the shared models converted by tests/gguf_writer.py (BF16, so the
weights are bit-identical to the safetensors) must generate what transformers generated
(tests/fixtures/reference/shared-models.json), the BERT fixture's GGUF must embed as
sentence-transformers did with its pooling_type as the default, and a corrupt file must fail
cleanly."""
import array
import json
import os
import struct
import subprocess
import sys
import unittest

from brisk_cli import MODELS, SHARED, brisk, brisk_json

FIXTURES = os.environ["BRISK_FIXTURES_DIR"]
WORK = os.environ["BRISK_GGUF_WORK_DIR"]
WRITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf_writer.py")
with open(os.path.join(FIXTURES, "reference", "shared-models.json")) as f:
    REFERENCE = json.load(f)


def converted(model):
    os.makedirs(WORK, exist_ok=True)
    out = os.path.join(WORK, f"{model}-bf16.gguf")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(WRITER):
        subprocess.run([sys.executable, WRITER, "model", os.path.join(SHARED, "models", model), out,
                        "--type", "bf16"], check=True)
    return out


def f32_tensors(path):
    """The F32 tensors of a safetensors file, flattened."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    return {name: array.array("f", data[info["data_offsets"][0]:info["data_offsets"][1]]).tolist()
            for name, info in header.items() if name != "__metadata__" and info["dtype"] == "F32"}


class GgufCli(unittest.TestCase):
    def test_generate_matches_transformers(self):
        for model in MODELS:
            gguf = converted(model)
            case = REFERENCE[model]["greedy"][0]
            with self.subTest(model=model):
                tok = brisk_json("tokenize", "-m", gguf, "--text", case["prompt"], "--add-special")
                self.assertEqual(tok["ids"], case["prompt_ids"])
                out = brisk_json("generate", "-m", gguf, "-p", case["prompt"], "-n", "64", "--temp", "0",
                                 "--ignore-eos")
                self.assertEqual(out["ids"], case["new_ids"])
                self.assertEqual(out["text"], case["text"])

    def test_inspect_lists_hugging_face_names(self):
        out = brisk_json("inspect", "-m", converted("sotu-qwen2"))
        names = {t["name"] for t in out["tensors"]}
        self.assertIn("model.layers.0.self_attn.q_proj.bias", names)
        self.assertIn("model.embed_tokens.weight", names)

    def test_bert_embeddings_follow_pooling_type(self):
        """The BERT fixture as llama.cpp converts it: bert.pooling_type (mean) and llama.cpp's
        normalization are the defaults, and the vectors are sentence-transformers'."""
        folder = os.path.join(FIXTURES, "golden", "bert")
        gguf = os.path.join(WORK, "cli-bert-f32.gguf")
        if not os.path.exists(gguf) or os.path.getmtime(gguf) < os.path.getmtime(WRITER):
            subprocess.run([sys.executable, WRITER, "model", folder, gguf, "--type", "f32"], check=True)
        want = f32_tensors(os.path.join(folder, "embeddings.safetensors"))
        out = brisk_json("embed", "-m", gguf, "-p", "The State of the Union is strong.")
        self.assertEqual(out["pooling"], "mean")
        self.assertTrue(out["normalize"])
        got = out["data"][0]["embedding"]
        expected = want["mean_normalized.0"]
        self.assertEqual(len(got), len(expected))
        self.assertLess(max(abs(a - b) for a, b in zip(got, expected)), 1e-5)

    def test_chat_uses_the_gguf_chat_template(self):
        # The bundled model converted with its chat template (tokenizer.chat_template): brisk chat on
        # the GGUF file answers exactly as on the folder.
        folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "sotu-tiny")
        gguf = os.path.join(WORK, "sotu-tiny-bf16.gguf")
        subprocess.run([sys.executable, WRITER, "model", folder, gguf, "--type", "bf16"], check=True)
        turns = "What is the budget?\nAnd the army?\n"
        # The folder's generation_config.json sets a repetition penalty the GGUF file does not carry.
        flags = ["-n", "16", "--temp", "0", "--repeat-penalty", "1"]
        want = brisk("chat", "-m", folder, *flags, input=turns).stdout
        got = brisk("chat", "-m", gguf, *flags, input=turns).stdout
        self.assertEqual(got, want)
        self.assertTrue(want.strip())

    def test_corrupt_file_fails_cleanly(self):
        bad = os.path.join(WORK, "truncated.gguf")
        with open(converted("sotu-gpt2"), "rb") as f, open(bad, "wb") as g:
            g.write(f.read(100000))
        proc = brisk("generate", "-m", bad, "-p", "Hello", "-n", "4", check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("truncated.gguf", proc.stderr)
        self.assertNotIn("BRISK_CHECK", proc.stderr)


if __name__ == "__main__":
    unittest.main()
