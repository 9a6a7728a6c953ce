"""What the end-to-end CLI tests share: the brisk binary and shared models from the environment
ctest sets, and a runner that fails with brisk's stderr (python3 standard library only)."""
import json
import os
import subprocess

BRISK = os.environ["BRISK_BIN"]
SHARED = os.environ["BRISK_SHARED_DIR"]
MODELS = ["sotu-llama", "sotu-gpt2", "sotu-qwen2"]


def model_dir(name):
    return os.path.join(SHARED, "models", name)


def brisk(*args, check=True, input=None):
    proc = subprocess.run([BRISK, *args], capture_output=True, text=True, timeout=1800, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"brisk {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def brisk_json(*args):
    return json.loads(brisk(*args, "--json").stdout)
