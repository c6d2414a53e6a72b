"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`):
no WebDriver, no websocket library. Messages are JSON, each ended by a NUL byte, on the
child's fds 3 (to Chromium) and 4 (from it)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium with one page; `call` sends a DevTools command and waits."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 1600) -> None:
        assert CHROMIUM is not None, "Debian's chromium is in the Makefile's DEBIAN_TEST_PACKAGES"
        to_child, self._to = os.pipe()
        self._from, from_child = os.pipe()
        os.set_inheritable(to_child, True)
        os.set_inheritable(from_child, True)
        args = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--remote-debugging-pipe", f"--user-data-dir={profile}",
            f"--window-size={width},{height}", "--disable-extensions", "about:blank",
        ]  # fmt: skip

        def fds() -> None:
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)

        self.process = subprocess.Popen(
            args, preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, close_fds=True,
        )  # fmt: skip
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._id = 0
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        attached = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)
        self.session = attached["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)

    def _read(self, timeout: float) -> dict[str, Any]:
        import select

        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._from, 1 << 20)
            if not chunk:
                raise EOFError("Chromium closed its pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        result: dict[str, Any] = json.loads(message)
        return result

    def call(self, method: str, session: bool = False, timeout: float = 30, **params: Any) -> Any:
        """Send one command (to the page's session when `session`) and return its result."""
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read(timeout)
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def go(self, url: str) -> None:
        """Load a URL and wait for its load event (or give up after a few seconds)."""
        answer = self.call("Page.navigate", session=True, url=url)
        if answer.get("errorText"):
            raise ConnectionError(f"{url}: {answer['errorText']}")
        self.wait_for("document.readyState === 'complete'")

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", session=True, expression=expression,
                           returnByValue=True, awaitPromise=True)  # fmt: skip
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.js(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"never true: {expression}")

    def screenshot(self, path: Path, full: bool = True) -> Path:
        """A PNG of the whole page (or of the window only, `full=False`)."""
        data = self.call("Page.captureScreenshot", session=True, format="png",
                         captureBeyondViewport=full)["data"]  # fmt: skip
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        """Stop Chromium."""
        with contextlib.suppress(TimeoutError, EOFError, RuntimeError, OSError):
            self.call("Browser.close", timeout=5)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to)
        os.close(self._from)


def wait_listening(url: str, timeout: float = 60.0) -> None:
    """Return once something accepts TCP connections at the URL's port (raise on timeout)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens at {url}")
