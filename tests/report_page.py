"""What the report-page tests share: headless Chromium (Debian's chromium) over a local HTML file,
and the numbers a page shows with the JSON paths they come from (python3 standard library only)."""
import html.parser
import json
import os
import shutil
import subprocess
import tempfile

CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


def chromium(page, *args):
    """Runs Chromium on the file `page`; the console's messages appear in stderr as ':CONSOLE' lines."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, "file://" + os.path.abspath(page)],
                              capture_output=True, text=True, timeout=180)


class _DataAttributes(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-json" in a and ("data-value" in a or "data-y" in a):
            self.found.append((a["data-json"], float(a.get("data-value", a.get("data-y")))))


def shown_numbers(dom):
    """[(path as a list of keys, number shown)] for every element carrying data-json: a JSON array of
    keys, or keys joined by dots."""
    parser = _DataAttributes()
    parser.feed(dom)
    return [(json.loads(p) if p.startswith("[") else p.split("."), v) for p, v in parser.found]


def json_at(obj, keys):
    for key in keys:
        obj = obj[int(key)] if isinstance(obj, list) else obj[key]
    return obj


def screenshot_ok(test, page):
    """Takes a screenshot of the page; asserts it is a PNG of some size and the console stayed quiet."""
    with tempfile.TemporaryDirectory() as tmp:
        png = os.path.join(tmp, "page.png")
        shot = chromium(page, "--window-size=1200,2400", f"--screenshot={png}")
        test.assertEqual(shot.returncode, 0, shot.stderr)
        test.assertNotIn(":CONSOLE", shot.stderr)
        with open(png, "rb") as f:
            data = f.read()
        test.assertTrue(data.startswith(b"\x89PNG") and len(data) > 20000, len(data))
