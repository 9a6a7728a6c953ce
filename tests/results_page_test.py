"""bench/report's results page in headless Chromium: it renders every committed bench/results/*.json
without a console message, the numbers it shows equal the files', a screenshot is taken, and the
committed docs/results.html is what bench/report writes now (regenerate it with bench/report)."""
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

import report_page

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ResultsPage(unittest.TestCase):
    def test_the_page_shows_the_results(self):
        with tempfile.TemporaryDirectory() as tmp:
            page = os.path.join(tmp, "results.html")
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "report"), "-o", page], check=True,
                           capture_output=True)
            with open(page) as f, open(os.path.join(ROOT, "docs", "results.html")) as committed:
                self.assertTrue(f.read() == committed.read(), "docs/results.html is stale: run bench/report")
            if not report_page.CHROMIUM:
                self.skipTest("chromium is not installed (scripts/setup.sh installs it)")
            dom = report_page.chromium(page, "--dump-dom")
            self.assertEqual(dom.returncode, 0, dom.stderr)
            self.assertNotIn(":CONSOLE", dom.stderr)
            files = {}
            results = os.path.join(ROOT, "bench", "results")
            for name in os.listdir(results):
                if name.endswith(".json"):
                    with open(os.path.join(results, name)) as f:
                        files[name[:-5]] = json.load(f)
            shown = report_page.shown_numbers(dom.stdout)
            self.assertEqual({k[1] for k, _ in shown}, set(files))  # every file has its numbers on the page
            for keys, value in shown:
                self.assertEqual(keys[0], "files")
                want = report_page.json_at(files, keys[1:])
                self.assertTrue(math.isclose(value, want, rel_tol=1e-12), f"{keys}: page {value}, file {want}")
            report_page.screenshot_ok(self, page)

    def test_headlines_as_markdown(self):
        md = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "report"), "--markdown"], check=True,
                            capture_output=True, text=True).stdout
        self.assertTrue(md.startswith("| capability | figure |"))
        with open(os.path.join(ROOT, "docs", "RESULTS.md")) as f:
            self.assertIn(md.strip(), f.read(), "docs/RESULTS.md's summary table is stale: paste bench/report --markdown")


if __name__ == "__main__":
    unittest.main()
