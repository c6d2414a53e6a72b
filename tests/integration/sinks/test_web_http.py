"""The status page of a running agent, with a plain HTTP client: nothing but the login without
a session, every asset and the data endpoint with one, hostile requests refused and bounded."""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.config.web import WebConfig
from agent.demo.simulator.plc import SimulatedPlc
from agent.demo.simulator.process import ExtrusionLine
from agent.runtime.app import Agent
from agent.sinks.web.server import ASSETS, COOKIE
from tests.helpers import SCADA_PASSWORD, free_port, site_config, wait_for

PATHS = ["/", "/static/status.js", "/static/status.css", "/api/status", "/logout", "/nope",
         "/static/../server.py", "/static/status.html"]  # fmt: skip


def request(port: int, method: str, path: str, body: str = "", **headers: str) -> Any:
    """(status, headers, body) of one request on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        if body:
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        conn.request(method, path, body=body or None, headers=headers)
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        conn.close()


async def call(port: int, method: str, path: str, body: str = "", **headers: str) -> Any:
    """`request` off the event loop (the agent serves on this loop)."""
    return await asyncio.to_thread(request, port, method, path, body, **headers)


async def login(port: int, user: str = "viewer", password: str = SCADA_PASSWORD) -> Any:
    """Log in; (status, headers, body)."""
    return await call(port, "POST", "/login", f"user={user}&password={password}")


def cookie_of(headers: dict[str, str]) -> str:
    """The session cookie a login set, as the browser sends it back."""
    return headers["Set-Cookie"].split(";")[0]


@pytest.fixture
async def agent_page(
    bundle_dir: Path, tmp_path: Path
) -> AsyncIterator[tuple[Agent, int, SimulatedPlc]]:
    """An agent on the simulated line with `[web]` on a free port; (agent, port, its PLC)."""
    plc_port, web_port = free_port(), free_port()
    config = site_config(bundle_dir, tmp_path, plc_port, free_port(), 10.0)
    config = dataclasses.replace(config, web=WebConfig(port=web_port))
    plc = SimulatedPlc(ExtrusionLine(seed=3), port=plc_port, period_s=0.1)
    await plc.start()
    agent = Agent(config)
    ready = asyncio.Event()
    tasks = [asyncio.create_task(plc.run()), asyncio.create_task(agent.run(ready))]
    try:
        await asyncio.wait_for(ready.wait(), 15)
        assert agent.web is not None
        await wait_for(lambda: agent.web is not None and agent.web.port is not None, 5)
        yield agent, web_port, plc
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await plc.stop()


async def test_without_a_session_only_the_login_is_served(
    agent_page: tuple[Agent, int, SimulatedPlc],
) -> None:
    _, port, _ = agent_page
    status, headers, body = await call(port, "GET", "/login")
    assert status == 200 and b'name="password"' in body
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    for path in PATHS:
        status, headers, body = await call(port, "GET", path)
        if path == "/":
            assert (status, headers["Location"]) == (303, "/login")
        else:
            assert status == 401, path
        assert b"score" not in body and b"extruder" not in body, path
    for path in ASSETS:
        status, _, body = await call(port, "GET", path, Cookie=f"{COOKIE}=made-up")
        assert status == 401 and len(body) < 64
    status, _, body = await login(port, password="wrong")
    assert status == 401 and b"Wrong user or password" in body
    status, _, _ = await login(port, user="nobody")
    assert status == 401


async def test_a_login_serves_the_page_its_assets_and_the_live_data(
    agent_page: tuple[Agent, int, SimulatedPlc],
) -> None:
    agent, port, _ = agent_page
    status, headers, _ = await login(port)
    assert status == 303 and headers["Location"] == "/"
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    cookie = cookie_of(headers)
    status, headers, page = await call(port, "GET", "/", Cookie=cookie)
    assert status == 200 and b'src="/static/status.js"' in page
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert b"http://" not in page and b"https://" not in page  # no CDN
    for path in ASSETS:
        status, _, body = await call(port, "GET", path, Cookie=cookie)
        assert status == 200 and body
        assert b"https://" not in body
    await wait_for(lambda: getattr(agent.monitor, "last_score", None) is not None, 15)
    status, _, body = await call(port, "GET", "/api/status", Cookie=cookie)
    data = json.loads(body)
    assert status == 200 and data["user"] == "viewer"
    (line,) = data["lines"]
    assert line["line"] == "extruder-1" and line["threshold"] > 0
    assert {t["name"] for t in line["tags"]} == set(agent.monitor.channels)
    assert all(t["quality"] == "good" for t in line["tags"])
    assert data["plcs"][0]["state"] == "ok" and data["model"]["status"] == "active"
    pressure = next(t for t in line["tags"] if t["name"] == "melt_pressure")
    assert pressure["limits"]["lcl"] < pressure["limits"]["center"] < pressure["limits"]["ucl"]
    assert len(pressure["trace"]) > 5
    status, headers, _ = await call(port, "POST", "/logout", Cookie=cookie)
    assert status == 303
    status, _, _ = await call(port, "GET", "/api/status", Cookie=cookie)
    assert status == 401  # the session is gone


async def test_hostile_requests_are_refused_with_a_bounded_answer(
    agent_page: tuple[Agent, int, SimulatedPlc],
) -> None:
    agent, port, _ = agent_page

    def raw(data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

    huge_head = b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n"
    assert (await asyncio.to_thread(raw, huge_head)).startswith(b"HTTP/1.1 431")
    big_body = b"POST /login HTTP/1.1\r\nContent-Length: 100000\r\n\r\n"
    assert (await asyncio.to_thread(raw, big_body)).startswith(b"HTTP/1.1 413")
    assert (await asyncio.to_thread(raw, b"\x16\x03\x01garbage\r\n\r\n")).startswith(
        b"HTTP/1.1 400"
    )
    fields = "&".join(f"f{i}=x" for i in range(20)).encode()
    many = b"POST /login HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(fields), fields)
    assert (await asyncio.to_thread(raw, many)).startswith(b"HTTP/1.1 400")
    chunked = b"POST /login HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert (await asyncio.to_thread(raw, chunked)).startswith(b"HTTP/1.1 411")
    status, _, _ = await call(port, "DELETE", "/api/status")
    assert status == 405
    status, headers, _ = await login(port)
    status, _, _ = await call(port, "PUT", "/api/status", Cookie=cookie_of(headers))
    assert status == 405  # read-only, also with a session
    before = agent.loop.processed
    await wait_for(lambda: agent.loop.processed > before + 5, 10)  # the line went on


async def test_a_plc_that_stops_answering_shows_as_down_with_a_comms_alarm(
    agent_page: tuple[Agent, int, SimulatedPlc],
) -> None:
    _, port, plc_server = agent_page
    _, headers, _ = await login(port)
    cookie = cookie_of(headers)

    async def status() -> dict[str, Any]:
        _, _, body = await call(port, "GET", "/api/status", Cookie=cookie)
        return dict(json.loads(body))

    assert (await status())["plcs"][0]["state"] == "ok"
    await plc_server.stop()
    down: dict[str, Any] = {}
    for _ in range(100):
        down = await status()
        if down["plcs"][0]["state"] == "down" and down["lines"][0]["open_alarms"]:
            break
        await asyncio.sleep(0.2)
    plc = down["plcs"][0]
    assert plc["state"] == "down" and plc["error"]
    kinds = {a["kind"] for a in down["lines"][0]["open_alarms"]}
    assert "comms" in kinds
    tags = down["lines"][0]["tags"]
    assert all(t["quality"] != "good" for t in tags)  # the last values, marked not good


async def test_a_line_in_commissioning_mode_has_a_page_too(
    bundle_dir: Path, tmp_path: Path
) -> None:
    plc_port, web_port = free_port(), free_port()
    config = site_config(bundle_dir, tmp_path, plc_port, free_port(), 10.0)
    config = dataclasses.replace(config, bundle=None, web=WebConfig(port=web_port))
    plc = SimulatedPlc(ExtrusionLine(seed=3), port=plc_port, period_s=0.1)
    await plc.start()
    agent = Agent(config)
    ready = asyncio.Event()
    tasks = [asyncio.create_task(plc.run()), asyncio.create_task(agent.run(ready))]
    try:
        await asyncio.wait_for(ready.wait(), 15)
        await wait_for(lambda: agent.web is not None and agent.web.port is not None, 5)
        _, headers, _ = await login(web_port)
        _, _, body = await call(web_port, "GET", "/api/status", Cookie=cookie_of(headers))
        data = json.loads(body)
        assert data["model"]["status"] == "commissioning"
        (line,) = data["lines"]
        assert line["score"] is None and line["tags"]  # no model: values, no score
        assert all(t["limits"] is None for t in line["tags"])
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await plc.stop()
