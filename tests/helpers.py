"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from agent.config import SiteConfig
from agent.demo.run import free_port

REPO = Path(__file__).resolve().parents[1]
SCADA_PASSWORD = "end-to-end-viewer"  # the `viewer` user of site_config's SCADA server
__all__ = ["REPO", "SCADA_PASSWORD", "eventually", "free_port", "site_config", "wait_for"]


def site_config(
    bundle: Path, state: Path, plc_port: int, opcua_port: int, speedup: float = 10.0
) -> SiteConfig:
    """The shipped example site config on the given ports, `speedup` times real time.

    Its SCADA server is the demo's: SignAndEncrypt, user `viewer` with SCADA_PASSWORD."""
    from agent.demo.run import demo_config

    return demo_config(state, bundle, plc_port, opcua_port, speedup, SCADA_PASSWORD)


async def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> float:
    """Wait until `predicate()` is true; return the seconds it took, raise on timeout."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(step)
    return time.monotonic() - start


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float) -> float:
    """Poll an async predicate until it is true; return the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await check():
        if loop.time() - start > timeout:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)
    return loop.time() - start
