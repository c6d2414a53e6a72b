"""Draw the README's pictures into docs/img/ (run after `make demo` has built .demo/bundle).

    python docs/img/make_images.py

- spc-xbar-r.png: `lineside spc --png` of qcc's pistonrings (X-bar/R, trial period 25, spec
  limits 73.95..74.05, target 74), the chart of tests/integration/cli/test_spc_charts.py;
- score-report.png: the top of `lineside score --report` on ten minutes of the simulator with
  melt_pressure stepped up 25 bar for 80 s, as headless Chromium renders it;
- status-page.png: the `[web]` status page of `lineside demo` during its first alarm.
Screenshots need Debian's chromium; the pictures are kept small (about 1000 px wide).
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.browser import Browser, wait_listening  # noqa: E402

OUT = REPO / "docs" / "img"
BUNDLE = REPO / ".demo" / "bundle"


def lineside(*args: str) -> None:
    """Run one `lineside` command from the repository."""
    subprocess.run([sys.executable, "-m", "agent", *args], cwd=REPO, check=True)


def spc_chart() -> None:
    """The X-bar/R chart of pistonrings with its capability panel."""
    lineside("spc", "--input", "tests/fixtures/spc/pistonrings.csv", "--column", "diameter",
             "--chart", "xbar-r", "--subgroup", "5", "--phase1", "25", "--lsl", "73.95",
             "--usl", "74.05", "--target", "74", "--png", str(OUT / "spc-xbar-r.png"))  # fmt: skip


def report(work: Path) -> None:
    """The replay report of a stepped melt pressure, screenshotted."""
    from agent.demo.run import write_historian

    source = work / "historian.csv"
    write_historian(source, rows=600, seed=5)
    with source.open(newline="") as f:
        rows = list(csv.reader(f))
    column = rows[0].index("melt_pressure")
    labelled = [rows[0] + ["anomaly"]]
    for k, row in enumerate(rows[1:]):
        if 300 <= k < 380:
            row[column] = f"{float(row[column]) + 25:.4f}"
        labelled.append([*row, str(int(300 <= k < 380))])
    with source.open("w", newline="") as f:
        csv.writer(f).writerows(labelled)
    html = work / "report.html"
    catalogue = REPO / "firmware-configs" / "failure-modes" / "demo-extruder.toml"
    lineside("score", "--bundle", str(BUNDLE), "--input", str(source), "--report", str(html),
             "--catalogue", str(catalogue))  # fmt: skip
    browser = Browser(work / "profile-report", width=1000, height=1400)
    try:
        browser.go(html.as_uri())
        browser.screenshot(OUT / "score-report.png", full=False)
    finally:
        browser.close()


def status_page(work: Path) -> None:
    """The demo's status page once an alarm is open and explained."""
    out = work / "demo.out"
    with out.open("w") as stdout:
        demo = subprocess.Popen(
            [sys.executable, "-m", "agent", "demo", "--no-view", "--seconds", "120"],
            cwd=REPO, stdout=stdout, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    browser = None
    try:
        for _ in range(600):
            text = out.read_text(errors="replace")
            url = re.search(r"Status page: (http://127\.0\.0\.1:\d+/)", text)
            password = re.search(r"user viewer, password (\S+)", text)
            if url and password:
                break
            time.sleep(0.2)
        else:
            raise SystemExit("the demo did not announce its status page")
        wait_listening(url.group(1))
        browser = Browser(work / "profile-page", width=1000, height=1250)
        browser.go(url.group(1) + "login")
        browser.js(
            "document.getElementById('user').value = 'viewer';"
            f"document.getElementById('password').value = {password.group(1)!r};"
            "document.querySelector('form').submit(); true"
        )
        browser.wait_for(
            "[...document.querySelectorAll('.open-alarm .explanation')]"
            ".some(e => e.textContent.includes('line extruder-1'))",
            timeout=90,
        )
        time.sleep(0.5)  # one more poll: the charts drawn with the alarm
        browser.screenshot(OUT / "status-page.png", full=False)
    finally:
        if browser is not None:
            browser.close()
        demo.terminate()
        demo.wait(timeout=30)


def main() -> None:
    """Draw every picture."""
    OUT.mkdir(parents=True, exist_ok=True)
    spc_chart()
    with tempfile.TemporaryDirectory(prefix="lineside-img-") as tmp:
        report(Path(tmp))
        status_page(Path(tmp))
    for name in ("spc-xbar-r.png", "score-report.png", "status-page.png"):
        print(f"{OUT / name}: {(OUT / name).stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
