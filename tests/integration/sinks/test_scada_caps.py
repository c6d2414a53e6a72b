"""Per-session caps: one viewer cannot take every subscription nor unbounded monitored items,
and a session touches only its own subscriptions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.ua.uaerrors import UaError

from agent.config.opcua import OpcUaConfig, ScadaLimits
from agent.sinks.scada import ScadaServer
from tests.helpers import free_port
from tests.scada_helpers import PASSWORDS, client_certificate, scada_config, secure_client, trust


class Quiet:
    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        pass


@asynccontextmanager
async def two_clients(tmp_path: Path, limits: ScadaLimits) -> AsyncIterator[tuple[Client, ...]]:
    config: OpcUaConfig = scada_config(tmp_path, free_port(), limits=limits)
    cert, key, uri = client_certificate(tmp_path / "client", "hmi")
    trust(config, cert)
    server = ScadaServer(config, "line-a", [], [], "1", threshold=1.0)
    await server.start()
    try:
        viewer = await secure_client(config.endpoint, cert, key, uri, "ada", PASSWORDS["ada"])
        operator = await secure_client(config.endpoint, cert, key, uri, "otto", PASSWORDS["otto"])
        async with viewer, operator:
            yield viewer, operator
    finally:
        await server.stop()


async def threshold(client: Client) -> Any:
    ns = await client.get_namespace_index("urn:lineside")
    return client.get_node(f"ns={ns};s=Lines/line-a/Threshold")


async def test_one_viewer_cannot_take_every_subscription(tmp_path: Path) -> None:
    limits = ScadaLimits(max_subscriptions=16, max_subscriptions_per_session=4)
    async with two_clients(tmp_path, limits) as (viewer, operator):
        held = [await viewer.create_subscription(100, Quiet()) for _ in range(4)]
        with pytest.raises(UaError, match="BadTooManySubscriptions"):
            await viewer.create_subscription(100, Quiet())
        # the operator gets its own, and sees its values
        ours = await operator.create_subscription(100, Quiet())
        assert await ours.subscribe_data_change(await threshold(operator))
        # the viewer may not delete the operator's subscription (asyncua would let it)
        answer = await viewer.uaclient.delete_subscriptions([ours.subscription_id])
        assert answer[0].name == "BadSubscriptionIdInvalid"
        params = ua.CreateMonitoredItemsParameters()
        params.SubscriptionId = ours.subscription_id
        params.ItemsToCreate = [ua.MonitoredItemCreateRequest()]
        with pytest.raises(UaError, match="BadSubscriptionIdInvalid"):
            await viewer.uaclient.create_monitored_items(params)
        assert await operator.uaclient.delete_subscriptions([ours.subscription_id]) == [
            ua.StatusCode()
        ]
        # deleting one of its own frees a place for the viewer again
        await held[0].delete()
        assert await viewer.create_subscription(100, Quiet())


async def test_monitored_items_are_capped_per_session(tmp_path: Path) -> None:
    limits = ScadaLimits(max_monitored_items_per_session=30)
    async with two_clients(tmp_path, limits) as (viewer, operator):
        node = await threshold(viewer)
        first = await viewer.create_subscription(100, Quiet())
        handles = await first.subscribe_data_change([node] * 20)
        assert all(isinstance(h, int) for h in handles)
        second = await viewer.create_subscription(100, Quiet())  # the cap spans subscriptions
        results = await second.subscribe_data_change([node] * 15)
        assert all(isinstance(h, int) for h in results[:10])
        assert [r.name for r in results[10:]] == ["BadTooManyMonitoredItems"] * 5
        with pytest.raises(UaError, match="BadTooManyMonitoredItems"):
            await second.subscribe_data_change(node)
        # another session is not affected
        theirs = await operator.create_subscription(100, Quiet())
        assert len(await theirs.subscribe_data_change([await threshold(operator)] * 30)) == 30
        # an item deleted is a place freed
        await first.unsubscribe(handles[0])
        assert isinstance(await second.subscribe_data_change(node), int)
