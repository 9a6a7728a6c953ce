"""Tensor and pipeline parallelism across processes: `mpirun -np N*M brisk ... --tp N --pp M`
(OpenMPI, oversubscribed on this machine's cores) against Hugging Face's greedy ids
(tests/fixtures/reference) and the one-process run, plus the failures: a job of the wrong size, and
a rank that fails while the others wait for it in a collective (the job must end, not hang)."""
import json
import os
import subprocess
import tempfile
import threading
import unittest
import urllib.request

from brisk_cli import BRISK, SHARED, Server, brisk_json, model_dir

FIXTURES = os.environ["BRISK_FIXTURES_DIR"]
with open(os.path.join(FIXTURES, "reference", "shared-models.json")) as f:
    REFERENCE = json.load(f)
# Root in CI containers, and more ranks than cores.
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")


def mpirun(ranks, *args, timeout=600):
    return subprocess.run(["mpirun", "-np", str(ranks), BRISK, *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def mpirun_json(tp, pp, *args):
    ranks = tp * pp
    proc = mpirun(ranks, *args, "--tp", str(tp), "--pp", str(pp), "-t", "1", "--json")
    if proc.returncode != 0:
        raise AssertionError(f"mpirun -np {ranks} brisk {' '.join(args)} --tp {tp} --pp {pp} exited "
                             f"{proc.returncode}: {proc.stderr}")
    lines = proc.stdout.strip().splitlines()
    if len(lines) != 1:  # rank 0 alone prints
        raise AssertionError(f"expected one JSON line from rank 0, got: {proc.stdout}")
    return json.loads(lines[0])


class ModelParallel(unittest.TestCase):
    # (model, tp, pp). qwen2 tp 4: kv heads replicated; gpt2: fused Conv1D c_attn; pipelines of
    # 2 stages (llama untied, gpt2 tied: its embedding table on both ends), and 2 shards x 2 stages.
    CASES = (("sotu-llama", 2, 1), ("sotu-qwen2", 2, 1), ("sotu-qwen2", 4, 1), ("sotu-gpt2", 2, 1),
             ("sotu-llama", 1, 2), ("sotu-gpt2", 1, 2), ("sotu-qwen2", 2, 2))

    def test_greedy_ids_match_transformers(self):
        for model, tp, pp in self.CASES:
            for case in REFERENCE[model]["greedy"]:
                with self.subTest(model=model, tp=tp, pp=pp, prompt=case["prompt"]):
                    out = mpirun_json(tp, pp, "generate", "-m", model_dir(model), "-p", case["prompt"], "-n", "64",
                                      "--temp", "0", "--ignore-eos")
                    self.assertEqual(out["ids"], case["new_ids"])

    def test_sampling_matches_one_process(self):
        # No --seed: rank 0 draws one and samples alone; the one-process run with that seed gives
        # the same tokens.
        for model, tp, pp in self.CASES:
            with self.subTest(model=model, tp=tp, pp=pp):
                args = ["generate", "-m", model_dir(model), "-p", "The President", "-n", "24", "--temp", "0.9",
                        "--ignore-eos"]
                out = mpirun_json(tp, pp, *args)
                alone = brisk_json(*args, "--seed", str(out["seed"]))
                self.assertEqual(out["ids"], alone["ids"])
                # Speculation's checking passes are batches like any other for the followers.
                if pp > 1 or model == "sotu-llama":
                    speculative = mpirun_json(tp, pp, *args, "--seed", str(out["seed"]), "--lookup", "2")
                    self.assertEqual(speculative["ids"], alone["ids"])

    def test_perplexity_matches_one_process(self):
        text = os.path.join(tempfile.mkdtemp(), "head.txt")
        with open(os.path.join(SHARED, "data", "text", "sotu-valid.txt"), encoding="utf-8") as f:
            open(text, "w", encoding="utf-8").write(f.read(20000))
        # 256-token windows: the pipelines run each as two micro-batches.
        for model, tp, pp in self.CASES:
            with self.subTest(model=model, tp=tp, pp=pp):
                out = mpirun_json(tp, pp, "perplexity", "-m", model_dir(model), "-f", text, "--ctx", "256")
                alone = brisk_json("perplexity", "-m", model_dir(model), "-f", text, "--ctx", "256")
                self.assertEqual(out["scored"], alone["scored"])
                self.assertLess(abs(out["nll_sum"] - alone["nll_sum"]) / alone["nll_sum"], 1e-6)

    def test_bench_runs_split(self):
        out = mpirun_json(2, 1, "bench", "-m", model_dir("sotu-qwen2"), "-p", "32", "-n", "16", "-r", "1")
        self.assertGreater(out["decode_tok_s"], 0)

    def test_serve_split_answers_as_one_process(self):
        # Rank 0 serves HTTP and schedules; rank 1 follows its batches. Four greedy requests at
        # once (batched together) each get the one-process continuation; SIGTERM ends the job.
        prompts = ["The President", "Congress shall", "Our economy", "In the year"]
        want = [brisk_json("generate", "-m", model_dir("sotu-qwen2"), "-p", p, "-n", "16", "--temp", "0",
                           "--ignore-eos")["text"] for p in prompts]
        for split in (["--tp", "2"], ["--pp", "2"]):
            with self.subTest(split=split):
                self.serve_split(split, prompts, want)

    def serve_split(self, split, prompts, want):
        got = [None] * len(prompts)
        with Server("-m", model_dir("sotu-qwen2"), *split, "-t", "1", launcher=["mpirun", "-np", "2"],
                    env=ENV) as server:
            def ask(i):
                body = json.dumps({"prompt": prompts[i], "max_tokens": 16, "temperature": 0,
                                   "ignore_eos": True}).encode()
                request = urllib.request.Request(server.url + "/v1/completions", body,
                                                 {"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=120) as response:
                    got[i] = json.load(response)["choices"][0]["text"]
            threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(got, want, server.log())
            server.proc.terminate()
            server.wait(timeout=60)  # raises if the job does not end

    def test_failures_end_the_job(self):
        # A job of the wrong size, and a model that does not split (6 heads over 4): every rank
        # says why.
        proc = mpirun(2, "generate", "-m", model_dir("sotu-qwen2"), "-p", "x", "--tp", "4", timeout=120)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("--tp 4 --pp 1 needs 4 ranks; this job has 2", proc.stderr)
        proc = mpirun(4, "generate", "-m", model_dir("sotu-llama"), "-p", "x", "--tp", "4", timeout=120)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("the 6 attention heads do not divide over 4 ranks", proc.stderr)
        # A collective timeout that is no number of seconds is refused by name.
        proc = subprocess.run(["mpirun", "-np", "2", BRISK, "generate", "-m", model_dir("sotu-qwen2"), "-p", "x",
                               "--tp", "2"], capture_output=True, text=True, timeout=120,
                              env=dict(ENV, BRISK_COLLECTIVE_TIMEOUT="soon"))
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("BRISK_COLLECTIVE_TIMEOUT='soon' is not a positive number of seconds", proc.stderr)
        # Rank 1 cannot load its model while rank 0 loads and waits in its first all-reduce: rank
        # 1's failure aborts the job (no hang; the timeout would fail the test).
        bad = os.path.join(tempfile.mkdtemp(), "missing")
        proc = subprocess.run(["mpirun", "-np", "1", BRISK, "generate", "-m", model_dir("sotu-qwen2"), "-p", "x",
                               "--tp", "2", "-n", "8", ":", "-np", "1", BRISK, "generate", "-m", bad, "-p", "x",
                               "--tp", "2"], capture_output=True, text=True, timeout=120, env=ENV)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("not a model folder", proc.stderr)

    def test_a_stopped_rank_times_out(self):
        # Rank 1 is stopped (SIGSTOP) two seconds into a perplexity run of ~15 s (past loading and
        # tokenizing, inside its passes): rank 0's next all-reduce (or the sending of its next
        # batch) waits past BRISK_COLLECTIVE_TIMEOUT (3 s), its watchdog says so, the job ends.
        brisk_args = ["perplexity", "-m", model_dir("sotu-qwen2"), "-f",
                      os.path.join(SHARED, "data", "text", "sotu-valid.txt"), "--ctx", "256", "--tp", "2", "-t", "1"]
        # (mpirun ends the shell it started; the trap takes the stopped brisk down with it.)
        stop_later = (f"{BRISK} {' '.join(brisk_args)} & p=$!; trap 'kill -KILL $p' TERM INT; sleep 2; "
                      "kill -STOP $p; wait $p")
        env = dict(ENV, BRISK_COLLECTIVE_TIMEOUT="3")
        proc = subprocess.run(["mpirun", "-np", "1", BRISK, *brisk_args, ":", "-np", "1", "sh", "-c", stop_later],
                              capture_output=True, text=True, timeout=120, env=env)
        self.assertNotEqual(proc.returncode, 0)
        self.assertRegex(proc.stderr, r"rank 0: (an all-reduce|an all-gather|a broadcast) waited more than 3 s")


if __name__ == "__main__":
    unittest.main()
