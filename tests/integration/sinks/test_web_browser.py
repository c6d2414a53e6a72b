"""The status page in a real browser: headless Chromium (Debian's `chromium`) against
`lineside demo` running as a child process, on loopback.

With the demo's user and password the page shows the live score changing and, once the demo
injects its first fault, an open alarm with its explanation; a screenshot is kept. Without a
login the browser gets nothing but the login form: the page redirects there, and every asset
and the data endpoint answer 401."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.sinks.web.server import ASSETS
from tests.browser import Browser, wait_listening
from tests.helpers import REPO

DEMO_SECONDS = 150  # wall seconds at 10x: the first fault comes about 6 s in


@pytest.fixture(scope="module")
def demo(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`lineside demo` on the test bundle; its status page URL and password."""
    state = tmp_path_factory.mktemp("demo")
    shutil.copytree(bundle_dir, state / "bundle")
    out = state / "demo.out"
    with out.open("w") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "agent", "demo", "--seconds", str(DEMO_SECONDS),
             "--state-dir", str(state), "--no-view"],
            cwd=REPO, stdout=stdout, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180  # a loaded box: the demo loads the bundle first
        url = password = None
        while time.monotonic() < deadline and url is None:
            text = out.read_text(errors="replace")
            found = re.search(r"Status page: (http://127\.0\.0\.1:\d+/)", text)
            secret = re.search(r"user viewer, password (\S+)", text)
            if found and secret:
                url, password = found.group(1), secret.group(1)
            time.sleep(0.2)
        assert url and password, out.read_text(errors="replace")
        wait_listening(url, timeout=120)  # announced before the agent serves it
        yield {"url": url, "password": password, "state": str(state)}
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    chromium = Browser(tmp_path / "profile")
    try:
        yield chromium
    finally:
        chromium.close()


def test_the_page_shows_the_live_score_and_an_alarm_with_its_explanation(
    demo: dict[str, str], browser: Browser, tmp_path: Path
) -> None:
    browser.go(demo["url"] + "login")
    browser.js(
        f"document.getElementById('user').value = 'viewer';"
        f"document.getElementById('password').value = {demo['password']!r};"
        "document.querySelector('form').submit(); true"
    )
    browser.wait_for("document.querySelector('[data-line] .score') !== null")
    scores = set()
    deadline = time.monotonic() + 20
    while len(scores) < 3 and time.monotonic() < deadline:
        value = browser.js("document.querySelector('[data-line] .score').dataset.score")
        if value:
            scores.add(value)
        time.sleep(0.5)
    assert len(scores) >= 3, f"the score did not change: {scores}"
    assert browser.js("document.querySelectorAll('[data-line] tr[data-tag]').length") == 9
    assert browser.js("document.querySelector('[data-plc] td:nth-child(2)').textContent") == "ok"
    explained = (
        "[...document.querySelectorAll('.open-alarm .explanation')]"
        ".map(e => e.textContent).find(t => t.includes('line extruder-1'))"
    )
    text = browser.wait_for(explained, timeout=90)
    assert "normal range" in text
    assert browser.js("document.querySelectorAll('.chart polyline').length") >= 10
    assert "model 1" in browser.js("document.getElementById('model').textContent")
    shot = browser.screenshot(tmp_path / "status.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_without_a_login_the_browser_gets_only_the_login_form(
    demo: dict[str, str], browser: Browser
) -> None:
    browser.go(demo["url"])
    assert browser.js("location.pathname") == "/login"
    assert browser.js("document.querySelector('input[type=password]') !== null")
    assert browser.js("document.querySelector('[data-line]') === null")
    # the login page may not even fetch: its CSP allows no connection at all
    blocked = "fetch('/api/status').then(() => 'fetched', () => 'blocked')"
    assert browser.js(blocked) == "blocked"
    for path in [*ASSETS, "/api/status"]:
        browser.go(demo["url"] + path.lstrip("/"))
        assert browser.js("document.body.textContent").strip() == "log in first: /login", path
