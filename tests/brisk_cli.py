"""What the end-to-end CLI tests share: the brisk binary and shared models from the environment
ctest sets, and a runner that fails with brisk's stderr (python3 standard library only)."""
import json
import os
import re
import subprocess
import threading

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


class Server:
    """`brisk serve ARGS` on a free port of 127.0.0.1 (the bundled model unless ARGS name one).
    Its stderr is read as it comes (the request log would fill a pipe nobody reads and stall it).
    launcher: a command that starts brisk (e.g. ["mpirun", "-np", "2"]), with its environment."""

    def __init__(self, *args, launcher=(), env=None):
        self.proc = subprocess.Popen([*launcher, BRISK, "serve", "--port", "0", "--host", "127.0.0.1", *args],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        self.lines = []
        self.port = None
        ready = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.lines.append(line)
                found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
                if found and self.port is None:
                    self.port = int(found.group(1))
                    ready.set()
            ready.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        ready.wait(120)
        if self.port is None:
            self.proc.kill()
            self.wait()
            raise AssertionError("brisk serve did not start: " + self.log())
        self.url = f"http://127.0.0.1:{self.port}"

    def log(self):
        return "".join(self.lines)

    def wait(self, timeout=60):
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
