"""The status page's server: login with the OPC-UA users, then the page, its assets and JSON.

Without a valid session nothing but the login page is served: `/` answers with a redirect to
`/login`, every asset and the data endpoint with 401 (no body worth reading). A login checks
the user's scrypt hash in a worker thread, one at a time, so the event loop (and the detection
loop on it) never waits on the 70 ms of scrypt; a wrong password costs the caller a pause.
Sessions are random tokens in an HttpOnly, SameSite=Strict cookie, held in memory (a restart
logs everybody out) and dropped after `session_h`.

Every asset is a file of `static/` shipped in the package: no CDN, no font from elsewhere. The
page's Content-Security-Policy allows only its own origin. The page is read-only: the only
POSTs are /login and /logout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.config.opcua import ScadaUser
from agent.config.passwords import hash_password, parse_hash, verify_password
from agent.config.web import WebConfig
from agent.sinks.web.board import StatusBoard
from agent.sinks.web.http import MAX_HEAD, BadRequest, Request, Response, read_request

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
ASSETS = {
    "/static/status.js": ("status.js", "text/javascript; charset=utf-8"),
    "/static/status.css": ("status.css", "text/css; charset=utf-8"),
}
COOKIE = "lineside_session"
MAX_SESSIONS = 256
FAILED_LOGIN_PAUSE_S = 1.0
HISTORY_S = 24 * 3600
HISTORY_REFRESH_S = 5.0
VIEW_REFRESH_S = 0.5  # the page polls once a second: a view this old is still current
MAX_REQUESTS_PER_CONNECTION = 1000
PAGE_CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
LOGIN_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'"
)
LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Lineside: log in</title><style>
body{font-family:system-ui,sans-serif;display:flex;justify-content:center;margin-top:10vh}
form{border:1px solid #ccc;padding:1.5em 2em;border-radius:6px}label{display:block;margin:.6em 0}
input{display:block;margin-top:.2em;padding:.3em}.error{color:#b00}</style></head><body>
<form method="post" action="/login"><h1>Lineside status</h1>%s
<label>User<input name="user" id="user" autocomplete="username" required></label>
<label>Password<input name="password" id="password" type="password"
autocomplete="current-password" required></label>
<button type="submit" id="login">Log in</button><p>Read-only. Users are the SCADA users.</p>
</form></body></html>"""


class Sessions:
    """Logged-in browsers: token -> (user, expiry)."""

    def __init__(self, lifetime_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lifetime_s = lifetime_s
        self.clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}

    def start(self, user: str) -> str:
        """A new session token for `user`; the oldest session goes when there are too many."""
        if len(self._tokens) >= MAX_SESSIONS:
            del self._tokens[next(iter(self._tokens))]
        token = secrets.token_urlsafe(32)
        self._tokens[token] = (user, self.clock() + self.lifetime_s)
        return token

    def user(self, token: str | None) -> str | None:
        """Whose session this is, or None (unknown or expired)."""
        if not token:
            return None
        entry = self._tokens.get(token)
        if entry is None:
            return None
        if entry[1] < self.clock():
            del self._tokens[token]
            return None
        return entry[0]

    def end(self, token: str | None) -> None:
        """Log a session out."""
        if token:
            self._tokens.pop(token, None)


class StatusPage:
    """The `[web]` service: `run()` serves until cancelled."""

    def __init__(
        self,
        config: WebConfig,
        users: tuple[ScadaUser, ...],
        board: StatusBoard,
        history: Callable[[float], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.config = config
        self.users = {u.name: u for u in users}
        self._decoy = parse_hash(hash_password(secrets.token_urlsafe(16)))
        self.board = board
        self.history = history
        self.sessions = Sessions(config.session_h * 3600)
        self._login_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(config.max_clients)
        self._history: list[dict[str, Any]] = []
        self._history_at = -HISTORY_REFRESH_S
        self._view: tuple[float, bytes] | None = None
        self.requests = 0
        self.refused = 0  # requests answered 401 for want of a session
        self.port: int | None = None  # the bound port (config.port, or the kernel's for 0)

    async def run(self, started: asyncio.Event | None = None) -> None:
        """Listen on `bind:port` and serve until cancelled."""
        server = await asyncio.start_server(
            self._connection, self.config.bind, self.config.port, limit=MAX_HEAD
        )
        self.port = int(server.sockets[0].getsockname()[1])
        log.info("status page on http://%s:%d/", self.config.bind, self.port)
        if started is not None:
            started.set()
        async with server:
            await server.serve_forever()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._slots.locked():
            writer.write(Response(503, b"too many open connections\n").encode(False))
            await self._close(writer)
            return
        async with self._slots:
            try:
                for _ in range(MAX_REQUESTS_PER_CONNECTION):
                    request = await read_request(reader)
                    if request is None:
                        break
                    response = await self.answer(request)
                    writer.write(response.encode(request.keep_alive))
                    await writer.drain()
                    if not request.keep_alive:
                        break
            except BadRequest as exc:
                body = f"{exc}\n".encode()
                with contextlib.suppress(OSError):
                    writer.write(Response(exc.status, body).encode(False))
            except (TimeoutError, OSError):
                pass  # a silent or vanished client: just close
            finally:
                await self._close(writer)

    @staticmethod
    async def _close(writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            writer.close()
            await writer.wait_closed()

    async def answer(self, request: Request) -> Response:
        """The response to one request."""
        self.requests += 1
        path, method = request.path, request.method
        if path == "/login":
            if method == "POST":
                return await self._login(request)
            return self._login_page("", 200)
        if method not in ("GET", "POST"):
            return Response(405, b"read-only: GET only\n", headers={"Allow": "GET"})
        token = request.cookie(COOKIE)
        user = self.sessions.user(token)
        if user is None:
            self.refused += 1
            if path == "/" and method == "GET":
                return Response(303, headers={"Location": "/login"})
            return Response(401, b"log in first: /login\n")
        if path == "/logout" and method == "POST":
            self.sessions.end(token)
            expired = f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
            return Response(303, headers={"Location": "/login", "Set-Cookie": expired})
        if method != "GET":
            return Response(405, b"read-only: GET only\n", headers={"Allow": "GET"})
        if path == "/":
            page = (STATIC / "status.html").read_bytes()
            csp = {"Content-Security-Policy": PAGE_CSP}
            return Response(200, page, "text/html; charset=utf-8", csp)
        if path in ASSETS:
            name, kind = ASSETS[path]
            return Response(200, (STATIC / name).read_bytes(), kind)
        if path == "/api/status":
            board = await self._board_json()
            body = b'{"user": ' + json.dumps(user).encode() + b", " + board[1:]
            return Response(200, body, "application/json")
        return Response(404, b"not found\n")

    def _login_page(self, error: str, status: int) -> Response:
        message = f'<p class="error" id="error">{error}</p>' if error else ""
        body = (LOGIN_PAGE % message).encode()
        return Response(
            status, body, "text/html; charset=utf-8", {"Content-Security-Policy": LOGIN_CSP}
        )

    async def _login(self, request: Request) -> Response:
        form = request.form()
        name, password = form.get("user", ""), form.get("password", "")
        user = self.users.get(name)
        # An unknown name costs the same scrypt as a known one: timing tells no user names.
        stored = user.password if user is not None else self._decoy
        async with self._login_lock:  # one scrypt at a time: a flood cannot eat the CPUs
            ok = await asyncio.to_thread(verify_password, password, stored) and user is not None
            if not ok:
                await asyncio.sleep(FAILED_LOGIN_PAUSE_S)
        if not ok:
            log.warning("status page: failed login for %r", name[:64])
            return self._login_page("Wrong user or password.", 401)
        token = self.sessions.start(name)
        cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
        return Response(303, headers={"Location": "/", "Set-Cookie": cookie})

    async def _board_json(self) -> bytes:
        """The board and the history as JSON, built at most every VIEW_REFRESH_S: five browsers
        polling cost the event loop one build, not five."""
        now = time.monotonic()
        if self._view is None or now - self._view[0] >= VIEW_REFRESH_S:
            view = self.board.view()
            view["history"] = await self._alarm_history()
            self._view = (now, json.dumps(view, allow_nan=False).encode())
        return self._view[1]

    async def _alarm_history(self) -> list[dict[str, Any]]:
        """The journal's alarm edges of the last 24 h, read in a thread, at most every 5 s."""
        now = time.monotonic()
        if self.history is not None and now - self._history_at >= HISTORY_REFRESH_S:
            self._history_at = now
            try:
                self._history = await asyncio.to_thread(self.history, time.time() - HISTORY_S)
            except Exception as exc:  # a journal that cannot be read leaves the page up
                log.warning("status page: alarm history not read: %s", exc)
        return self._history


def journal_history(path: Path, since: float, limit: int = 200) -> list[dict[str, Any]]:
    """The newest `limit` alarm edges (anomaly, spc, comms) of the journal since `since`."""
    from agent.sinks.journal_db import query

    if not path.exists():
        return []
    rows = query(path, since=since, kinds=("anomaly", "spc", "comms"))[-limit:]
    keep = ("ts", "line", "kind", "state", "detector", "tag", "message")
    return [{k: row[k] for k in keep} for row in reversed(rows)]
