"""The status page's cost to the agent: its CPU with five browsers open vs none, one run.

    python benchmarks/web.py [--window 20] [--browsers 5] [--speedup 10]

One `lineside demo` (simulated PLC + agent in one process, the demo's `[web]` on loopback) runs
throughout. Its CPU time (utime + stime from /proc) is read over `--window` seconds with no
browser open, then over the same window with `--browsers` headless Chromium (Debian's
`chromium`) logged in, each page polling /api/status once a second and redrawing its charts,
then once more with none (the box is shared: two idle phases show its noise).
The browsers' own CPU is not the agent's and is not counted. Needs Linux and chromium.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.browser import Browser, wait_listening  # noqa: E402  (the repository's own DevTools driver)

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def measure(pid: int, window: float) -> float:
    """CPU seconds the process used over `window` wall seconds."""
    before = cpu_seconds(pid)
    time.sleep(window)
    return cpu_seconds(pid) - before


def start_demo(
    seconds: float, speedup: float, out: Path
) -> tuple[subprocess.Popen[bytes], str, str]:
    """`lineside demo` as a child; (process, page URL, password)."""
    with out.open("w") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "agent", "demo", "--no-view", "--seconds", str(seconds),
             "--speedup", str(speedup)],
            cwd=REPO, stdout=stdout, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    deadline = time.monotonic() + 600  # the first run trains the demo model
    while time.monotonic() < deadline:
        text = out.read_text(errors="replace")
        url = re.search(r"Status page: (http://127\.0\.0\.1:\d+/)", text)
        password = re.search(r"user viewer, password (\S+)", text)
        if url and password:
            return process, url.group(1), password.group(1)
        if process.poll() is not None:
            raise SystemExit(f"the demo exited: {text}")
        time.sleep(0.2)
    raise SystemExit("the demo did not announce its status page")


def open_page(profile: Path, url: str, password: str) -> Browser:
    """A headless Chromium logged in and showing the page."""
    wait_listening(url)
    browser = Browser(profile)
    browser.go(url + "login")
    browser.js(
        "document.getElementById('user').value = 'viewer';"
        f"document.getElementById('password').value = {password!r};"
        "document.querySelector('form').submit(); true"
    )
    browser.wait_for("document.querySelector('[data-line] .score') !== null")
    return browser


def main() -> None:
    """Print one row per phase: the agent's CPU and its share of one core."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--browsers", type=int, default=5)
    parser.add_argument("--speedup", type=float, default=10.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lineside-web-bench-"))
    seconds = 4 * args.window + 60
    process, url, password = start_demo(seconds, args.speedup, work / "demo.out")
    browsers: list[Browser] = []
    try:
        wait_listening(url)
        time.sleep(5)  # past start-up: the agent serves, its window fills
        before = measure(process.pid, args.window)
        browsers = [open_page(work / f"p{i}", url, password) for i in range(args.browsers)]
        time.sleep(2)
        polls = [b.js("performance.getEntriesByType('resource').length") for b in browsers]
        watched = measure(process.pid, args.window)
        polls = [b.js("performance.getEntriesByType('resource').length") - p
                 for b, p in zip(browsers, polls, strict=True)]  # fmt: skip
        for browser in browsers:
            browser.close()
        browsers = []
        time.sleep(2)
        after = measure(process.pid, args.window)
    finally:
        for browser in browsers:
            browser.close()
        process.terminate()
        process.wait(timeout=30)
    idle = (before + after) / 2
    requests = sum(polls)
    print(f"agent CPU (lineside demo at {args.speedup:g}x: simulator + agent), one run, "
          f"{args.window:g} s per phase")  # fmt: skip
    print(f"{'phase':<24}{'CPU s':>8}{'% of a core':>13}{'page requests':>15}")
    label = f"{args.browsers} browsers polling 1/s"
    for name, cpu, served in (("no browser (before)", before, 0), (label, watched, requests),
                              ("no browser (after)", after, 0)):  # fmt: skip
        print(f"{name:<24}{cpu:>8.2f}{100 * cpu / args.window:>13.1f}{served:>15}")
    extra = watched - idle
    print(f"ratio to the mean of the idle phases {watched / idle:.2f}x; {extra:+.2f} CPU s, "
          f"{1000 * extra / max(requests, 1):.2f} ms of agent CPU per page request")  # fmt: skip


if __name__ == "__main__":
    main()
