"""End-to-end tests of the brisk CLI on the shared models, against Hugging Face references
(tests/fixtures/reference/shared-models.json, made by scripts/golden/make_fixtures.py)."""
import json
import os
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.request

from brisk_cli import BRISK, MODELS, SHARED, Server, brisk, brisk_json, model_dir

FIXTURES = os.environ["BRISK_FIXTURES_DIR"]
with open(os.path.join(FIXTURES, "reference", "shared-models.json")) as f:
    REFERENCE = json.load(f)


class Greedy(unittest.TestCase):
    def test_greedy_64_tokens_match_transformers(self):
        for model in MODELS:
            for case in REFERENCE[model]["greedy"]:
                with self.subTest(model=model, prompt=case["prompt"]):
                    tok = brisk_json("tokenize", "-m", model_dir(model), "--text", case["prompt"], "--add-special")
                    self.assertEqual(tok["ids"], case["prompt_ids"])
                    out = brisk_json("generate", "-m", model_dir(model), "-p", case["prompt"], "-n", "64",
                                     "--temp", "0", "--ignore-eos")
                    self.assertEqual(out["ids"], case["new_ids"])
                    self.assertEqual(out["text"], case["text"])
                    self.assertEqual(out["new_tokens"], 64)
                    self.assertEqual(out["prompt_tokens"], len(case["prompt_ids"]))


class Perplexity(unittest.TestCase):
    def check(self, model):
        ref = REFERENCE[model]["sotu-test"]
        out = brisk_json("perplexity", "-m", model_dir(model), "-f",
                         os.path.join(SHARED, "data", "text", "sotu-test.txt"), "--ctx", "512")
        self.assertEqual(out["tokens"], ref["tokens"])
        self.assertEqual(out["windows"], ref["windows"])
        self.assertEqual(out["scored"], ref["scored"])
        self.assertLess(abs(out["ppl"] / ref["ppl"] - 1), 5e-4, f"{model}: {out['ppl']} vs {ref['ppl']}")

    def test_sotu_llama(self):
        self.check("sotu-llama")

    def test_sotu_gpt2(self):
        self.check("sotu-gpt2")

    def test_sotu_qwen2(self):
        self.check("sotu-qwen2")


class Sampling(unittest.TestCase):
    def test_same_seed_same_output(self):
        args = ["generate", "-m", model_dir("sotu-llama"), "-p", "We the people", "-n", "24", "--temp", "0.9",
                "--seed", "7"]
        a, b = brisk_json(*args), brisk_json(*args)
        self.assertEqual(a["ids"], b["ids"])
        c = brisk_json(*args[:-1], "8")
        self.assertNotEqual(a["ids"], c["ids"])

    def test_stop_string(self):
        out = brisk_json("generate", "-m", model_dir("sotu-llama"), "-p", "The State of the Union is", "-n", "64",
                         "--temp", "0", "--stop", "Union.")
        self.assertEqual(out["stop_reason"], "stop")
        self.assertEqual(out["text"], " the only part of the Union of the ")

    def test_speculation_keeps_the_output(self):
        # --draft (sotu-qwen2 shares sotu-llama's tokenizer) and --lookup give the text plain
        # decoding gives for the same seed; --json says how much was accepted.
        args = ["generate", "-m", model_dir("sotu-llama"), "-p", "We the people of the United States", "-n", "48",
                "--temp", "0.8", "--seed", "5", "--ignore-eos"]
        plain = brisk_json(*args)
        for source in (["--draft", model_dir("sotu-qwen2")], ["--lookup", "3", "--draft-max", "6"]):
            out = brisk_json(*args, *source)
            self.assertEqual(out["ids"], plain["ids"], source)
            spec = out["speculation"]
            self.assertEqual(spec["steps"] + spec["accepted"], len(out["ids"]) - 1, spec)
        bad = brisk(*args, "--draft", model_dir("sotu-gpt2"), check=False)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("a draft must share the model's tokenizer", bad.stderr)
        both = brisk(*args, "--draft", model_dir("sotu-qwen2"), "--lookup", "2", check=False)
        self.assertNotEqual(both.returncode, 0)
        self.assertIn("excludes", both.stderr)
        # A checking pass stays within the 16 rows computed exactly as decode steps (kDecodeOrderRows).
        long = brisk(*args, "--lookup", "3", "--draft-max", "16", check=False)
        self.assertNotEqual(long.returncode, 0)
        self.assertIn("--draft-max", long.stderr)
        self.assertIn("not in range 1 to 15", long.stderr)
        alone = brisk(*args, "--draft-max", "3", check=False)  # a tuning flag with nothing to tune
        self.assertNotEqual(alone.returncode, 0)
        self.assertIn("--draft-max tunes speculative decoding", alone.stderr)

    def test_streaming_text_equals_json_text(self):
        args = ["generate", "-m", model_dir("sotu-qwen2"), "-p", "Tonight", "-n", "40", "--temp", "0"]
        streamed = brisk(*args).stdout
        self.assertEqual(streamed.rstrip("\n"), brisk_json(*args)["text"])


class Errors(unittest.TestCase):
    def test_bad_flag(self):
        p = brisk("generate", "-m", model_dir("sotu-llama"), "-p", "x", "--no-such-flag", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--no-such-flag", p.stderr)

    def test_missing_model(self):
        p = brisk("generate", "-m", "/nonexistent/model", "-p", "x", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("/nonexistent/model", p.stderr)

    def test_prompt_over_context(self):
        p = brisk("generate", "-m", model_dir("sotu-llama"), "-p", "word " * 2000, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("context", p.stderr)

    def test_bad_device(self):
        p = brisk("generate", "-m", model_dir("sotu-llama"), "-p", "x", "--device", "tpu", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--device 'tpu'", p.stderr)

    def test_bad_kv_dtype(self):
        for cmd in (["generate", "-p", "x"], ["perplexity", "-f", "/nonexistent.txt"], ["bench"], ["serve"]):
            with self.subTest(cmd=cmd[0]):
                p = brisk(cmd[0], "-m", model_dir("sotu-llama"), *cmd[1:], "--kv-dtype", "int4", check=False)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn("'int4' is not a KV cache type (f32, bf16, int8, fp8)", p.stderr)

    def test_missing_text_file(self):
        p = brisk("perplexity", "-m", model_dir("sotu-llama"), "-f", "/nonexistent.txt", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("/nonexistent.txt", p.stderr)

    def test_text_shorter_than_window(self):
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
            f.write("Too short.")
            f.flush()
            p = brisk("perplexity", "-m", model_dir("sotu-llama"), "-f", f.name, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("fewer than one window", p.stderr)

    def test_serve_refuses_unusable_api_keys(self):
        # An empty key silently disabled authentication; one with a trailing space locked every
        # client out. Both are refused before the model loads, naming where the key came from.
        with tempfile.NamedTemporaryFile("w", suffix=".key") as key_file:
            key_file.write("sk-1 \n")
            key_file.flush()
            cases = [(["--api-key", ""], {}, "--api-key: the API key is empty"),
                     (["--api-key", "sk-1 "], {}, "--api-key: the API key contains whitespace"),
                     (["--api-key-file", key_file.name], {}, key_file.name),
                     (["--api-key-file", "/nonexistent.key"], {}, "/nonexistent.key: cannot read"),
                     ([], {"BRISK_API_KEY": ""}, "BRISK_API_KEY: the API key is empty")]
            for flags, env, message in cases:
                with self.subTest(flags=flags, env=env):
                    saved = dict(os.environ)
                    os.environ.update(env)
                    try:
                        p = brisk("serve", "-m", model_dir("sotu-llama"), "--port", "0", *flags, check=False)
                    finally:
                        os.environ.clear()
                        os.environ.update(saved)
                    self.assertEqual(p.returncode, 1)
                    self.assertIn(message, p.stderr)


    def test_devices_fifos_and_directories_are_refused_not_read(self):
        with tempfile.TemporaryDirectory() as tmp:
            fifo = os.path.join(tmp, "weights.gguf")
            os.mkfifo(fifo)
            for args, needle in ((["perplexity", "-f", "/dev/zero"], "/dev/zero: not a regular file"),
                                 (["perplexity", "-f", tmp], "is a directory"),
                                 (["inspect", "-m", fifo], "not a regular file"),
                                 (["generate", "-f", tmp, "-n", "1"], "is a directory")):
                p = brisk(*args, check=False)  # brisk() times out rather than hang forever
                self.assertEqual(p.returncode, 1, args)
                self.assertIn(needle, p.stderr)

    def test_byte_order_mark_is_skipped(self):
        with tempfile.TemporaryDirectory() as tmp:
            text = open(os.path.join(SHARED, "data", "text", "sotu-test.txt"), encoding="utf-8").read()[:6000]
            plain, marked = os.path.join(tmp, "plain.txt"), os.path.join(tmp, "marked.txt")
            open(plain, "w", encoding="utf-8").write(text)
            open(marked, "w", encoding="utf-8-sig").write(text)
            a = brisk_json("perplexity", "-f", plain, "--ctx", "128")
            b = brisk_json("perplexity", "-f", marked, "--ctx", "128")
            self.assertEqual((a["tokens"], a["ppl"]), (b["tokens"], b["ppl"]))
            # brisk tokenize --file reads a file as perplexity does: the same ids with or without the mark.
            ids = brisk_json("tokenize", "-f", marked)["ids"]
            self.assertEqual(ids, brisk_json("tokenize", "--text", text)["ids"])
            self.assertEqual(len(ids), a["tokens"])
            for args, needle in ((["tokenize"], "give the text"), (["tokenize", "--text", "a", "-f", plain], "excludes")):
                p = brisk(*args, check=False)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(needle, p.stderr)

    def test_invalid_utf8_is_refused_with_its_offset(self):
        bad = "abc\udcffdef"  # surrogateescape: the raw byte 0xFF on the command line
        for args in (["generate", "-m", model_dir("sotu-llama"), "-p", bad, "-n", "2"],
                     ["tokenize", "-m", model_dir("sotu-llama"), "--text", bad]):
            p = subprocess.run([BRISK, *args], capture_output=True, timeout=120)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(b"not valid UTF-8 (byte 0xFF at offset 3)", p.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "latin1.txt")
            open(path, "wb").write("caf\u00e9 ".encode("latin-1") * 100)
            for command in ("perplexity", "tokenize"):
                p = brisk(command, "-m", model_dir("sotu-llama"), "-f", path, check=False)
                self.assertEqual(p.returncode, 1)
                self.assertIn("latin1.txt is not valid UTF-8 (byte 0xE9 at offset 3)", p.stderr)

    def test_impossible_sizes_and_paths_are_clear_errors(self):
        p = brisk("bench", "-m", model_dir("sotu-llama"), "--batch", "100000000", "--no-limits", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--batch: must be in [1, 16384]", p.stderr)
        p = brisk("serve", "-m", model_dir("sotu-llama"), "--max-batch", "1000000000", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--max-batch", p.stderr)
        # Within the flag's range, but more KV cache (96 GiB) than the machine has.
        if os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") < 64 << 30:
            p = brisk("serve", "-m", model_dir("sotu-llama"), "--max-batch", "16384", "--port", "0", check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn("more than this machine's", p.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            a, b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
            os.symlink(b, a)
            os.symlink(a, b)
            p = brisk("generate", "-m", a, "-p", "x", check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn("not a model folder", p.stderr)

    def test_serve_refuses_a_port_in_use(self):
        with Server() as first:
            p = brisk("serve", "--port", str(first.port), "--host", "127.0.0.1", check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn("in use", p.stderr)


    def test_second_sigterm_exits_at_once(self):
        # sotu-llama and four long choices: seconds of work (the bundled model would finish it
        # before the second signal), so the graceful shutdown is still waiting when it comes.
        with Server("-m", model_dir("sotu-llama"), "--shutdown-grace", "60") as server:
            body = json.dumps({"prompt": "The", "max_tokens": 900, "n": 4, "stream": True,
                               "ignore_eos": True}).encode()
            stream = urllib.request.urlopen(urllib.request.Request(
                f"{server.url}/v1/completions", body, {"Content-Type": "application/json"}), timeout=30)
            stream.readline()
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            self.assertIsNone(server.proc.poll(), "the first SIGTERM waits for in-flight requests")
            server.proc.send_signal(signal.SIGTERM)
            self.assertEqual(server.wait(timeout=10), 130)
            self.assertIn("second SIGTERM, exiting now", server.log())


class Tools(unittest.TestCase):
    def test_inspect(self):
        out = brisk_json("inspect", "-m", model_dir("sotu-llama"))
        self.assertEqual(out["params"], 15733632)
        names = {t["name"]: t for t in out["tensors"]}
        self.assertEqual(names["lm_head.weight"]["shape"], [8192, 384])
        self.assertEqual(names["lm_head.weight"]["dtype"], "BF16")
        self.assertTrue(all(0 <= t["sparsity"] <= 1 for t in out["tensors"]))

    def test_bench_json(self):
        out = brisk_json("bench", "-m", model_dir("sotu-gpt2"), "-p", "32", "-n", "8", "-r", "2", "--no-limits")
        for key in ["prefill_tok_s", "decode_tok_s", "weight_bytes", "peak_rss_bytes"]:
            self.assertGreater(out[key], 0, key)
        self.assertEqual(out["kv_dtype"], "f32")
        out = brisk_json("bench", "-m", model_dir("sotu-gpt2"), "-p", "32", "-n", "8", "-r", "2", "--no-limits",
                         "--kv-dtype", "int8", "--batch", "2")
        self.assertEqual(out["kv_dtype"], "int8")
        self.assertGreater(out["decode_tok_s"], 0)

    def test_bench_counts_the_flops_prefill_runs(self):
        # Layers' products and causal attention per prompt token; the head only for the last row.
        c = json.load(open(os.path.join(model_dir("sotu-llama"), "config.json")))
        d, f, L, H, kv, hd = (c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"],
                              c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"])
        layer = d * H * hd * 2 + d * kv * hd * 2 + 3 * d * f
        p = 32
        attention = 2 * (p * (p + 1) // 2) * L * H * hd
        expect = 2 * (p * L * layer + c["vocab_size"] * d + attention) / p
        out = brisk_json("bench", "-m", model_dir("sotu-llama"), "-p", str(p), "-n", "2", "-r", "1", "--no-limits")
        self.assertEqual(out["prefill_flops_per_token"], expect)
        self.assertAlmostEqual(out["prefill_gflops"], expect * out["prefill_tok_s"] / 1e9, delta=1e-6 * out["prefill_gflops"])

    def test_prune_then_inspect_and_run(self):
        with tempfile.TemporaryDirectory() as d:
            out_dir = os.path.join(d, "pruned")
            report = brisk_json("prune", "-m", model_dir("sotu-qwen2"), "-o", out_dir, "--pattern", "2:4")
            self.assertAlmostEqual(report["sparsity"], 0.5)
            info = brisk_json("inspect", "-m", out_dir)
            layers = [t for t in info["tensors"] if ".layers." in t["name"] and t["name"].endswith("proj.weight")]
            self.assertTrue(layers)
            self.assertTrue(all(t["pattern"] == "2:4" for t in layers), layers[:2])
            self.assertTrue(all(t["pattern"] is None for t in info["tensors"] if "embed" in t["name"]))
            gen = brisk_json("generate", "-m", out_dir, "-p", "The State", "-n", "4", "--temp", "0", "--ignore-eos")
            self.assertEqual(gen["new_tokens"], 4)
            # Stored as compressed-tensors sparse-24-bitmask: smaller, the same text.
            sparse_dir = os.path.join(d, "sparse24")
            brisk("prune", "-m", model_dir("sotu-qwen2"), "-o", sparse_dir, "--pattern", "2:4", "--storage",
                  "sparse-24-bitmask")
            self.assertLess(os.path.getsize(os.path.join(sparse_dir, "model.safetensors")),
                            os.path.getsize(os.path.join(out_dir, "model.safetensors")))
            again = brisk_json("generate", "-m", sparse_dir, "-p", "The State", "-n", "4", "--temp", "0", "--ignore-eos")
            self.assertEqual(again["text"], gen["text"])
            # What it cannot do fails before writing anything.
            for args, message in ((["--method", "wanda"], "needs calibration text"),
                                  (["--sparsity", "0.5", "--storage", "sparse-24-bitmask"], "stores --pattern 2:4"),
                                  (["--pattern", "2:4", "--storage", "csr"], "--storage must be"),
                                  (["--pattern", "2:4", "--sparsity", "0.3"], "not both"),
                                  (["--pattern", "4:2"], "expected N:M"),
                                  (["--scope", "global", "--pattern", "2:4"], "unstructured only"),
                                  (["--method", "obs"], "unknown pruning method"),
                                  (["--seed", "3"], "read only by --method random"),
                                  (["--calib-tokens", "4096"], "read only with --calib"),
                                  (["--structured", "neurons", "--pattern", "2:4"], "does not apply"),
                                  (["--ratio", "0.5"], "only with --structured"),
                                  (["--structured", "rows"], "not neurons, heads, layers or hidden"),
                                  (["--structured", "layers"], "give --calib text")):
                bad = os.path.join(d, "bad")
                p = brisk("prune", "-m", model_dir("sotu-qwen2"), "-o", bad, *args, check=False)
                self.assertNotEqual(p.returncode, 0, args)
                self.assertIn(message, p.stderr, args)
                self.assertFalse(os.path.exists(bad), args)
            # Depth pruning: half the layers go, by block influence; the smaller model generates.
            shallow = os.path.join(d, "layers")
            report = brisk_json("prune", "-m", model_dir("sotu-qwen2"), "-o", shallow, "--structured", "layers",
                                "--ratio", "0.5", "--calib", os.path.join(SHARED, "data/text/sotu-valid.txt"),
                                "--calib-tokens", "2048")
            self.assertEqual((report["units_before"], report["units_after"], len(report["removed_layers"])), (4, 2, 2))
            self.assertEqual(len(report["layer_scores"]), 4)
            gen = brisk_json("generate", "-m", shallow, "-p", "The State", "-n", "4", "--temp", "0", "--ignore-eos")
            self.assertEqual(gen["new_tokens"], 4)
            quantized = os.path.join(d, "w8")  # prune the float model, then quantize
            brisk("quantize", "-m", model_dir("sotu-qwen2"), "-o", quantized, "--scheme", "w8")
            p = brisk("prune", "-m", quantized, "-o", os.path.join(d, "bad"), "--pattern", "2:4", check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn("already quantized", p.stderr)
            self.assertFalse(os.path.exists(os.path.join(d, "bad")))

    def test_lowrank_then_run(self):
        with tempfile.TemporaryDirectory() as d:
            out_dir = os.path.join(d, "svd30")
            report = brisk_json("lowrank", "-m", model_dir("sotu-qwen2"), "-o", out_dir, "--method", "svd",
                                "--compression", "0.3")
            self.assertGreaterEqual(report["compression"], 0.3 - 1e-9)  # at least what was asked, about that
            self.assertLess(report["compression"], 0.32)
            ranks = {name: m["rank"] for name, m in report["matrices"].items()}
            self.assertTrue(all(0 <= r < 256 for r in ranks.values()), ranks)
            with open(os.path.join(out_dir, "config.json")) as f:
                written = json.load(f)["brisk_low_rank"]
            self.assertEqual(written["method"], "svd")
            self.assertEqual(len(written["ranks"]), sum(1 for r in ranks.values() if r > 0))
            names = {t["name"] for t in brisk_json("inspect", "-m", out_dir)["tensors"]}
            self.assertIn("model.layers.0.mlp.down_proj.0.weight", names)
            gen = brisk_json("generate", "-m", out_dir, "-p", "The State", "-n", "4", "--temp", "0", "--ignore-eos")
            self.assertEqual(gen["new_tokens"], 4)
            llm = brisk_json("lowrank", "-m", model_dir("sotu-qwen2"), "-o", os.path.join(d, "llm"), "--method",
                             "svd-llm", "--rank-ratio", "0.25", "--calib", os.path.join(SHARED, "data/text/sotu-valid.txt"),
                             "--calib-tokens", "2048")
            self.assertEqual(llm["calibration_tokens"], 2048)
            self.assertTrue(all(m["rank"] == m["full_rank"] // 4 for m in llm["matrices"].values()), llm["matrices"])
            # What it cannot do fails before writing anything; passes that need whole matrices refuse it.
            for args, message in ((["--method", "svd"], "one of --rank-ratio and --compression"),
                                  (["--rank-ratio", "0.5", "--compression", "0.2"], "one of --rank-ratio"),
                                  (["--compression", "0.2", "--method", "svd-llm"], "needs calibration text"),
                                  (["--compression", "0.2", "--method", "svd", "--calib", "x.txt"], "only read by asvd and svd-llm"),
                                  (["--compression", "0.2", "--method", "tucker"], "unknown low-rank method"),
                                  (["--compression", "0.2", "--method", "svd", "--calib-tokens", "4096"], "read only with --calib"),
                                  (["--compression", "0.9999", "--method", "svd"], "out of reach")):
                bad = os.path.join(d, "bad")
                p = brisk("lowrank", "-m", model_dir("sotu-qwen2"), "-o", bad, *args, check=False)
                self.assertNotEqual(p.returncode, 0, args)
                self.assertIn(message, p.stderr, args)
                self.assertFalse(os.path.exists(bad), args)
            # (brisk quantize's RTN takes a factored folder: tests/quantize_test.py; its calibrated methods do not.)
            for args in (["quantize", "-m", out_dir, "-o", os.path.join(d, "bad"), "--scheme", "w4", "--method", "gptq",
                          "--calib", os.path.join(SHARED, "data/text/sotu-valid.txt")],
                         ["prune", "-m", out_dir, "-o", os.path.join(d, "bad"), "--pattern", "2:4"],
                         ["lowrank", "-m", out_dir, "-o", os.path.join(d, "bad"), "--method", "svd", "--compression", "0.2"]):
                p = brisk(*args, check=False)
                self.assertEqual(p.returncode, 1, args)
                self.assertIn("low-rank factored", p.stderr, args)
                self.assertFalse(os.path.exists(os.path.join(d, "bad")), args)

    def test_synth_round_trip(self):
        with tempfile.TemporaryDirectory() as d:
            out_dir = os.path.join(d, "gpt2")
            brisk("synth", "--shape", "gpt2-124m", "-o", out_dir, "--dtype", "bf16", "--seed", "3")
            info = brisk_json("inspect", "-m", out_dir)
            self.assertEqual(info["params"], 124439808)  # wte, wpe, 12 blocks, ln_f
            gen = brisk_json("generate", "-m", out_dir, "-p", "hello", "-n", "4", "--temp", "0", "--ignore-eos")
            self.assertEqual(gen["new_tokens"], 4)
            again = os.path.join(d, "gpt2")  # refuses to overwrite a non-empty folder
            p = brisk("synth", "--shape", "gpt2-124m", "-o", again, check=False)
            self.assertEqual(p.returncode, 1)
            p = brisk("synth", "--shape", "gpt5", "-o", os.path.join(d, "x"), check=False)
            self.assertIn("unknown --shape 'gpt5'", p.stderr)


    def test_embed_and_classify(self):
        # A decoder embeds with its final norm's output, last-token pooled by default.
        out = brisk_json("embed", "-m", model_dir("sotu-llama"), "-p", "The State of the Union", "-p", "is strong",
                         "--normalize")
        self.assertEqual((out["pooling"], out["normalize"], out["dimensions"]), ("last", True, 384))
        self.assertEqual([d["index"] for d in out["data"]], [0, 1])
        for d in out["data"]:
            self.assertEqual(len(d["embedding"]), 384)
            self.assertAlmostEqual(sum(v * v for v in d["embedding"]), 1.0, places=5)
        with tempfile.TemporaryDirectory() as tmp:
            bert = os.path.join(tmp, "bert")
            brisk("synth", "--shape", "bert-mini", "-o", bert, "--dtype", "f32")
            texts = os.path.join(tmp, "texts.txt")
            with open(texts, "w") as f:
                f.write("hello\n\nworld peace\n")
            out = brisk_json("embed", "-m", bert, "-f", texts, "--pooling", "cls")
            self.assertEqual((out["pooling"], out["normalize"], out["dimensions"]), ("cls", False, 128))
            self.assertEqual(len(out["data"]), 2)  # the empty line is skipped
            # An encoder does not generate; a non-classifier does not classify; bad flags name themselves.
            for args, needle in ((["generate", "-m", bert, "-p", "x"], "does not generate"),
                                 (["classify", "-m", bert, "-p", "x"], "not a sequence classifier"),
                                 (["embed", "-m", bert, "-p", "x", "--pooling", "max"], "--pooling"),
                                 (["embed", "-m", bert], "no input"),
                                 (["embed", "-m", bert, "-p", "word " * 600], "context_length_exceeded")):
                p = brisk(*args, check=False)
                self.assertEqual(p.returncode, 1, args)
                self.assertIn(needle, p.stderr)


class DayOne(unittest.TestCase):
    """What a first run needs: the bundled model without -m, llama.cpp's short flags, prompts from
    files and stdin, usage errors with exit code 2, and brisk chat driven through stdin."""

    def test_generate_without_a_model_flag_uses_the_bundled_model(self):
        p = brisk("generate", "-p", "The State of the Union is", "-n", "8", "-s", "1", check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("generation_config.json", p.stderr)  # the sampling it used, and where from
        out = brisk_json("generate", "-p", "The Congress", "-n", "8", "--temp", "0", "-c", "128")
        self.assertEqual(out["new_tokens"], 8)

    def test_prompt_from_file_and_stdin(self):
        want = brisk_json("generate", "-p", "We the people", "-n", "6", "--temp", "0")
        with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as f:
            f.write("\ufeffWe the people")  # a byte-order mark is dropped
            f.flush()
            self.assertEqual(brisk_json("generate", "-f", f.name, "-n", "6", "--temp", "0")["ids"], want["ids"])
        p = brisk("generate", "-f", "-", "-n", "6", "--temp", "0", "--json", input="We the people")
        self.assertEqual(json.loads(p.stdout)["ids"], want["ids"])
        p = brisk("generate", "-n", "6", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("-p TEXT or -f FILE", p.stderr)

    def test_usage_errors_exit_2_and_suggest(self):
        p = brisk("generate", "-p", "x", "--tmep", "0", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("did you mean --temp?", p.stderr)
        for args, needle in ((["--temp", "nan"], "not a finite number"), (["--top-p", "1.5"], "in [0, 1]"),
                             (["--temp", "-1"], ">= 0"), (["-n", "many"], "-n")):
            p = brisk("generate", "-p", "x", *args, check=False)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn(needle, p.stderr)
            self.assertLess(len(p.stderr), 300, p.stderr)  # no 309-digit range limits
        p = brisk("serve", "--max-queue", "0", check=False)  # would answer 429 to every request
        self.assertEqual(p.returncode, 2)
        self.assertIn("--max-queue", p.stderr)

    def test_serve_chat_template_override(self):
        p = brisk("serve", "--chat-template", "/nonexistent.jinja", "--port", "0", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("/nonexistent.jinja", p.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            template = os.path.join(tmp, "t.jinja")
            open(template, "w").write("{{ 'Q: ' }}{% for m in messages %}{{ m['content'] }}{% endfor %}")
            with Server("--chat-template", template) as server:
                def tokenize(body):
                    req = urllib.request.Request(f"{server.url}/tokenize", json.dumps(body).encode(),
                                                 {"Content-Type": "application/json"})
                    return json.loads(urllib.request.urlopen(req, timeout=30).read())["tokens"]
                rendered = tokenize({"messages": [{"role": "user", "content": "Hello"}], "add_generation_prompt": False})
                self.assertEqual(rendered, tokenize({"prompt": "Q: Hello", "add_special_tokens": False}))

    def test_chat_through_stdin(self):
        turns = "Tell me about the budget.\nAnd the army?\n/reset\nHello \\\nthere\n/exit\nnever read\n"
        p = brisk("chat", "-n", "12", "--temp", "0", "--system", "You are a president.", input=turns)
        replies = [line for line in p.stdout.split("\n") if line.strip()]
        self.assertEqual(len(replies), 3, p.stdout)  # three turns answered, nothing after /exit
        self.assertIn("[conversation reset]", p.stderr)
        # Greedy replies depend only on the conversation: the turn after /reset equals a fresh chat's.
        fresh = brisk("chat", "-n", "12", "--temp", "0", "--system", "You are a president.", input="Hello \\\nthere\n")
        self.assertEqual(fresh.stdout.strip(), replies[2].strip())
        p = brisk("chat", "--chat-template", "/nonexistent.jinja", input="hi\n", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("/nonexistent.jinja", p.stderr)


if __name__ == "__main__":
    unittest.main()
