"""`brisk chat` used the way a person uses it: in a real terminal (a tmux pane), typing turns,
pressing Ctrl-C in the middle of a reply, /reset and /exit (issue 18: the interactive test).
python3 standard library and tmux."""
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from brisk_cli import BRISK, model_dir

# sotu-llama (no template of its own) under a plain template: greedy replies run for hundreds of
# tokens, long enough to interrupt.
TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"


class Pane:
    """One tmux pane on a private tmux server, running `command`."""

    def __init__(self, command, directory):
        self.socket = f"brisk-chat-test-{os.getpid()}"
        config = os.path.join(directory, "tmux.conf")
        with open(config, "w") as f:
            f.write("set -g remain-on-exit on\nset -g history-limit 20000\n")  # keep the last screen
        self.tmux("-f", config, "new-session", "-d", "-s", "chat", "-x", "200", "-y", "50", command)

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True).stdout

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "chat", *keys)

    def screen(self):
        return self.tmux("capture-pane", "-p", "-J", "-S", "-20000", "-t", "chat")

    def wait_for(self, predicate, what, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if predicate(screen):
                return screen
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; the pane shows:\n{self.screen()[-3000:]}")

    def close(self):
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@unittest.skipUnless(shutil.which("tmux"), "tmux is not installed (scripts/setup.sh installs it)")
class InteractiveChat(unittest.TestCase):
    def test_turns_ctrl_c_reset_and_exit_in_a_terminal(self):
        with tempfile.TemporaryDirectory() as tmp:
            template = os.path.join(tmp, "template.jinja")
            with open(template, "w") as f:
                f.write(TEMPLATE)
            # The shell prints the exit status (tmux's own pane_dead_status is not always set); it
            # survives Ctrl-C itself (a no-op trap, which the chat does not inherit).
            pane = Pane(f"sh -c 'trap : INT; {BRISK} chat -m {model_dir('sotu-llama')} --chat-template {template} -n 1000 "
                        f"--temp 0 -t 1; echo \"[exit status $?]\"'", tmp)
            try:
                stats = lambda screen: re.findall(r"\[(\d+) new tokens; (\d+) of (\d+) prompt tokens reused\]", screen)
                pane.wait_for(lambda s: "Ctrl-C stops a reply" in s and s.rstrip().endswith(">"), "the first prompt")

                # A whole turn: the reply, its figures, the next prompt.
                pane.keys("Hello there", "Enter")
                screen = pane.wait_for(lambda s: len(stats(s)) == 1 and s.rstrip().endswith(">"), "the first reply")
                self.assertGreater(int(stats(screen)[0][0]), 0)

                # Ctrl-C once the reply is streaming: the reply stops, the chat goes on.
                pane.keys("Tell me about the budget.", "Enter")
                before = len(screen)
                pane.wait_for(lambda s: len(s) > before + len("Tell me about the budget.") + 40, "the second reply")
                pane.keys("C-c")
                screen = pane.wait_for(lambda s: "[reply stopped]" in s and len(stats(s)) == 2, "the stopped reply")
                new_tokens, reused, prompt = map(int, stats(screen)[1])
                self.assertLess(new_tokens, 1000, "Ctrl-C stopped the reply before its limit")
                self.assertGreater(reused, 0, "the second turn reused the first turn's cached keys")
                self.assertLess(reused, prompt)
                self.assertNotIn("[exit status", screen, "Ctrl-C during a reply does not quit")

                pane.keys("/reset", "Enter")
                pane.wait_for(lambda s: "[conversation reset]" in s, "the reset")
                pane.keys("/exit", "Enter")
                screen = pane.wait_for(lambda s: "[exit status" in s, "the chat to exit")
                self.assertIn("[exit status 0]", screen)
            finally:
                pane.close()


if __name__ == "__main__":
    unittest.main()
