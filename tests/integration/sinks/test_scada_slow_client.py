"""A SCADA client that subscribes and then stops reading must not slow the agent down.

The stalled client pauses reading its socket (as a hung HMI does). Meanwhile a loop standing
in for the detection loop offers a result every 20 ms and counts its own progress; a healthy
second client must keep receiving updates. Bounds are generous (this is not a benchmark):
the point is that nothing waits on the stalled client and its queues stay bounded.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from agent.pipeline.line import LineResult
from agent.sinks.scada import ScadaServer
from agent.types import TagReading
from tests.helpers import free_port
from tests.scada_helpers import (
    LINE,
    PASSWORDS,
    client_certificate,
    node,
    scada_config,
    secure_client,
    site_tags,
    trust,
)

PERIOD_S = 0.02
STALL_S = 4.0


class Count:
    def __init__(self) -> None:
        self.n = 0

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.n += 1


async def test_stalled_subscriber_does_not_slow_the_loop(tmp_path: Path) -> None:
    config = scada_config(tmp_path, free_port())
    tags = site_tags()
    server = ScadaServer(config, LINE, tags, [], "1", threshold=1.0)
    await server.start()
    publisher = asyncio.create_task(server.run())
    cert, key, uri = client_certificate(tmp_path / "client", "hmi")
    trust(config, cert)
    ticks: list[float] = []
    stop = asyncio.Event()

    async def detection_stand_in() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            readings = {t.name: TagReading(float(k)) for t in tags if t.name != "line_running"}
            server.offer(LineResult(time.time(), readings, {}, {}, {}, ()))
            ticks.append(time.monotonic())
            await asyncio.sleep(PERIOD_S)

    loop_task = asyncio.create_task(detection_stand_in())
    stalled = await secure_client(config.endpoint, cert, key, uri, "ada", PASSWORDS["ada"])
    healthy = await secure_client(config.endpoint, cert, key, uri, "otto", PASSWORDS["otto"])
    try:
        async with stalled, healthy:
            values = [await node(stalled, f"Lines/{LINE}/Signals/{t.name}/Value") for t in tags]
            sub = await stalled.create_subscription(10, Count())
            await sub.subscribe_data_change(values, queuesize=1000)  # asks for a huge queue
            seen = Count()
            hsub = await healthy.create_subscription(50, seen)
            await hsub.subscribe_data_change(
                await node(healthy, f"Lines/{LINE}/Signals/screw_speed/Value")
            )
            await asyncio.sleep(1.0)

            stalled.uaclient.protocol.transport.pause_reading()  # the HMI hangs
            before_ticks, before_seen = len(ticks), seen.n
            started = time.monotonic()
            await asyncio.sleep(STALL_S)
            elapsed = time.monotonic() - started
            during = len(ticks) - before_ticks
            received = seen.n - before_seen

            subs = server.server.iserver.subscription_service.subscriptions.values()
            queued = max(
                max((len(q) for q in s._triggered_datachanges.values()), default=0) for s in subs
            )
            unacked = max(len(s._not_acknowledged_results) for s in subs)
            stalled.uaclient.protocol.transport.resume_reading()
    finally:
        stop.set()
        await asyncio.gather(loop_task, return_exceptions=True)
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)
        await server.stop()

    expected = elapsed / PERIOD_S
    print(
        f"loop ticks during the stall: {during} of {expected:.0f}; healthy client got {received}; "
        f"stalled subscription: {queued} queued per item, {unacked} unacknowledged"
    )
    assert during >= 0.7 * expected, "the loop was slowed by a stalled client"
    assert received >= STALL_S / 0.2, "a healthy client stopped getting updates"
    assert queued <= config.limits.max_queue_size  # the requested 1000 was capped
    assert unacked <= 64
    assert server.coalesced < 0.5 * len(ticks)
