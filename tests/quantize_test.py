"""End-to-end tests of `brisk quantize`: bad input gives clear errors; every shared model quantizes
in every scheme, loads back and generates (python3 standard library only)."""
import json
import os
import tempfile
import unittest

from brisk_cli import MODELS, SHARED, brisk, model_dir

CALIB = os.path.join(SHARED, "data", "text", "sotu-train.txt")


class QuantizeErrors(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def out(self, name="out"):
        return os.path.join(self.tmp.name, name)

    def fails_with(self, args, *needles):
        p = brisk("quantize", *args, check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        for n in needles:
            self.assertIn(n, p.stderr)

    def test_unknown_scheme(self):
        self.fails_with(["-m", model_dir("sotu-llama"), "-o", self.out(), "--scheme", "w3"],
                        "unknown quantization scheme 'w3'", "w8")

    def test_asym_without_zero_point(self):
        for scheme in ["w8", "w8a8", "fp8", "nf4", "log2"]:
            with self.subTest(scheme=scheme):
                self.fails_with(["-m", model_dir("sotu-llama"), "-o", self.out(), "--scheme", scheme, "--asym"],
                                "has no zero point")

    def test_group_not_dividing_in_features(self):
        # sotu-llama's hidden size is 384: 256 is a valid block multiple but does not divide it.
        self.fails_with(["-m", model_dir("sotu-llama"), "-o", self.out(), "--scheme", "w4", "--group", "256"],
                        "does not divide", "384")
        self.assertFalse(os.path.exists(self.out()))

    def test_group_not_a_block_multiple(self):
        self.fails_with(["-m", model_dir("sotu-llama"), "-o", self.out(), "--scheme", "w4", "--group", "100"],
                        "multiple of 128")

    def test_calibrated_methods_need_text_and_their_scheme(self):
        m = ["-m", model_dir("sotu-llama"), "-o", self.out()]
        self.fails_with(m + ["--scheme", "w4", "--method", "gptq"], "needs calibration text")
        self.fails_with(m + ["--scheme", "w4", "--method", "magic", "--calib", CALIB], "unknown quantization method")
        self.fails_with(m + ["--scheme", "w4", "--method", "smoothquant", "--calib", CALIB], "needs --scheme w8a8")
        self.fails_with(m + ["--scheme", "w8", "--method", "awq", "--calib", CALIB], "w4 scheme")
        tiny = os.path.join(self.tmp.name, "tiny.txt")
        with open(tiny, "w") as f:
            f.write("Too little text to calibrate on.")
        self.fails_with(m + ["--scheme", "w4", "--method", "gptq", "--calib", tiny], "calibration")
        self.assertFalse(os.path.exists(self.out()) and os.listdir(self.out()))

    def test_unknown_head_policy(self):
        self.fails_with(["-m", model_dir("sotu-llama"), "-o", self.out(), "--scheme", "w4", "--head", "w2"],
                        "unknown head policy 'w2'", "keep")

    def test_quantized_module_without_a_group(self):
        out = self.out("q")
        brisk("quantize", "-m", model_dir("sotu-llama"), "-o", out, "--scheme", "w4")
        cfg_path = os.path.join(out, "config.json")
        cfg = json.load(open(cfg_path))
        groups = cfg["quantization_config"]["config_groups"]
        del groups["group_1"]  # the head's 8-bit group: the "Linear" group now takes lm_head, whose codes are 8-bit
        json.dump(cfg, open(cfg_path, "w"))
        self.fails_to_load(out, "'lm_head.weight': packed values are I32 [8192, 96], expected I32 [8192, 48]")
        groups["group_0"]["targets"] = ["re:model\\.layers\\."]  # no group for lm_head at all
        json.dump(cfg, open(cfg_path, "w"))
        self.fails_to_load(out, "no quantization_config group targets 'lm_head'")

    def fails_to_load(self, model, needle):
        p = brisk("generate", "-m", model, "-p", "We", "-n", "1", check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(needle, p.stderr)

    def test_already_quantized(self):
        brisk("quantize", "-m", model_dir("sotu-llama"), "-o", self.out("q"), "--scheme", "w8")
        self.fails_with(["-m", self.out("q"), "-o", self.out(), "--scheme", "w4"], "already quantized")


    def test_output_appears_only_when_complete(self):
        # A killed run leaves only its staging folder (.NAME.partial), which the retry replaces; a
        # failed run leaves nothing; the finished folder appears in one rename.
        staging = os.path.join(self.tmp.name, ".q.partial")
        os.makedirs(staging)
        with open(os.path.join(staging, "model.safetensors.tmp"), "w") as f:
            f.write("left by a killed run")
        brisk("quantize", "-m", model_dir("sotu-gpt2"), "-o", self.out("q") + "/", "--scheme", "w8")
        self.assertFalse(os.path.exists(staging))
        self.assertEqual(sorted(os.listdir(self.out("q"))), sorted(
            ["config.json", "model.safetensors"] + [n for n in os.listdir(model_dir("sotu-gpt2"))
                                                    if n not in ("config.json", "model.safetensors")]))
        self.fails_with(["-m", model_dir("sotu-gpt2"), "-o", self.out("bad"), "--scheme", "w4", "--group", "100"],
                        "--group")
        self.assertEqual(sorted(os.listdir(self.tmp.name)), ["q"])


class QuantizeRoundTrip(unittest.TestCase):
    def test_every_model_and_scheme_loads_and_generates(self):
        with tempfile.TemporaryDirectory() as tmp:
            for model in MODELS:
                for scheme, extra in [("w8", []), ("w4", []), ("w4", ["--asym"]), ("w8a8", []), ("fp8", []),
                                      ("nf4", []), ("log2", [])]:
                    with self.subTest(model=model, scheme=scheme, extra=extra):
                        out = os.path.join(tmp, f"{model}-{scheme}{''.join(extra)}")
                        if model == "sotu-qwen2" and scheme in ("w4", "nf4", "log2"):
                            # intermediate_size 704 is not a multiple of the default group of 128
                            p = brisk("quantize", "-m", model_dir(model), "-o", out, "--scheme", scheme, *extra,
                                      check=False)
                            self.assertIn("does not divide its 704 input features", p.stderr)
                            continue
                        rep = json.loads(brisk("quantize", "-m", model_dir(model), "-o", out, "--scheme", scheme,
                                               *extra, "--json").stdout)
                        self.assertGreater(rep["quantized"], 0)
                        self.assertLess(rep["bytes_out"], rep["bytes_in"])
                        cfg = json.load(open(os.path.join(out, "config.json")))
                        self.assertIn("quantization_config", cfg)
                        self.assertTrue(os.path.exists(os.path.join(out, "tokenizer.json")))
                        gen = json.loads(brisk("generate", "-m", out, "-p", "The state of the union", "-n", "8",
                                               "--temp", "0", "--ignore-eos", "--json").stdout)
                        self.assertEqual(gen["new_tokens"], 8)

    def test_calibrated_methods_write_loadable_models(self):
        with tempfile.TemporaryDirectory() as tmp:
            for method, scheme in [("gptq", "w4"), ("awq", "w4"), ("smoothquant", "w8a8")]:
                with self.subTest(method=method):
                    out = os.path.join(tmp, method)
                    rep = json.loads(brisk("quantize", "-m", model_dir("sotu-llama"), "-o", out, "--scheme", scheme,
                                           "--asym" if scheme == "w4" else "--sym", "--method", method,
                                           "--calib", CALIB, "--calib-tokens", "2048", "--json").stdout)
                    self.assertEqual(rep["method"], method)
                    gen = json.loads(brisk("generate", "-m", out, "-p", "The state of the union", "-n", "8",
                                           "--temp", "0", "--ignore-eos", "--json").stdout)
                    self.assertEqual(gen["new_tokens"], 8)

    def test_a_low_rank_model_quantizes_to_nearest_only(self):
        # brisk lowrank's factors are float matrices too: RTN quantizes them (low rank + quantization),
        # while the calibrated methods, which calibrate whole matrices, refuse the folder by name.
        with tempfile.TemporaryDirectory() as tmp:
            factored, quantized = os.path.join(tmp, "lr"), os.path.join(tmp, "lr-w8")
            brisk("lowrank", "-m", model_dir("sotu-llama"), "-o", factored, "--method", "svd", "--rank-ratio", "0.5")
            rep = json.loads(brisk("quantize", "-m", factored, "-o", quantized, "--scheme", "w8", "--json").stdout)
            self.assertGreater(rep["quantized"], 0)
            self.assertLess(rep["bytes_out"], 0.7 * rep["bytes_in"])  # the embeddings stay bf16
            with open(os.path.join(quantized, "config.json")) as f:
                self.assertIn("brisk_low_rank", json.load(f))
            text = os.path.join(tmp, "text.txt")  # a part of the test set: the comparison needs no more
            with open(os.path.join(SHARED, "data", "text", "sotu-test.txt")) as f, open(text, "w") as part:
                part.write(f.read(40000))
            ppl = [json.loads(brisk("perplexity", "-m", m, "-f", text, "--ctx", "256", "--json").stdout)["ppl"]
                   for m in (factored, quantized)]
            self.assertLess(abs(ppl[1] / ppl[0] - 1), 0.01, ppl)  # w8 costs well under 1% on its own
            p = brisk("quantize", "-m", factored, "-o", os.path.join(tmp, "gptq"), "--scheme", "w4", "--method", "gptq",
                      "--calib", CALIB, check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("low-rank factored (has brisk_low_rank); quantize --method gptq", p.stderr)
            self.assertFalse(os.path.exists(os.path.join(tmp, "gptq")))

    def test_head_policies(self):
        # sotu-llama's lm_head is not tied: auto gives it 8 bits under a 4-bit scheme (a second
        # config group naming it), keep leaves it in bf16, same gives it the scheme.
        with tempfile.TemporaryDirectory() as tmp:
            args = ["-p", "We the people", "-n", "8", "--temp", "0", "--ignore-eos", "--json"]
            ids = {}
            for head, want_head, want_groups in [("auto", "w8", 2), ("keep", None, 1), ("same", "w4", 1)]:
                with self.subTest(head=head):
                    out = os.path.join(tmp, head)
                    rep = json.loads(brisk("quantize", "-m", model_dir("sotu-llama"), "-o", out, "--scheme", "w4",
                                           "--head", head, "--json").stdout)
                    self.assertEqual(rep["head"], want_head)
                    self.assertEqual(rep["kept"], ["lm_head"] if head == "keep" else [])
                    q = json.load(open(os.path.join(out, "config.json")))["quantization_config"]
                    self.assertEqual(len(q["config_groups"]), want_groups)
                    if head == "auto":
                        g = q["config_groups"]["group_1"]
                        self.assertEqual((g["targets"], g["weights"]["num_bits"]), (["lm_head"], 8))
                    ids[head] = json.loads(brisk("generate", "-m", out, *args).stdout)["ids"]
            # A pattern target reaches the head as its name does.
            cfg_path = os.path.join(tmp, "auto", "config.json")
            cfg = json.load(open(cfg_path))
            cfg["quantization_config"]["config_groups"]["group_1"]["targets"] = ["re:lm_"]
            json.dump(cfg, open(cfg_path, "w"))
            self.assertEqual(json.loads(brisk("generate", "-m", os.path.join(tmp, "auto"), *args).stdout)["ids"],
                             ids["auto"])

    def test_w8_greedy_tokens_match_the_original(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "w8")
            brisk("quantize", "-m", model_dir("sotu-llama"), "-o", out, "--scheme", "w8")
            args = ["-p", "We the people", "-n", "16", "--temp", "0", "--ignore-eos", "--json"]
            want = json.loads(brisk("generate", "-m", model_dir("sotu-llama"), *args).stdout)["ids"]
            got = json.loads(brisk("generate", "-m", out, *args).stdout)["ids"]
            self.assertEqual(got[:8], want[:8])


if __name__ == "__main__":
    unittest.main()
