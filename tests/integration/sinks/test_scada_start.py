"""Fast start of the SCADA server: the line's nodes added in bulk, the standard address space from
a cache on disk; a real asyncua server and a SignAndEncrypt client browsing what was built."""

from __future__ import annotations

import shutil
from pathlib import Path

from asyncua import ua

from agent.config import Tag
from agent.core.codec import DataType, Layout, Scaling
from agent.sinks.scada import ScadaServer
from agent.sinks.scada.aspace_cache import MARKER, cache_folder
from tests.helpers import free_port
from tests.scada_helpers import (
    LINE,
    PASSWORDS,
    client_certificate,
    node,
    scada_config,
    secure_client,
    trust,
)


def tag(i: int) -> Tag:
    """Float tag `t<i>` with a range of its own."""
    scaling = Scaling()
    return Tag(f"t{i:03d}", "holding", 2 * i, DataType.FLOAT32, Layout(), scaling, "bar", "",
               eu_range=(0.0, 10.0 + i))  # fmt: skip


TAGS = [tag(i) for i in range(300)]


async def started(tmp_path: Path) -> ScadaServer:
    server = ScadaServer(scada_config(tmp_path, free_port()), LINE, TAGS, ["t000"], "1", 1.0)
    await server.start()
    return server


async def test_every_tag_is_browsable_with_its_range_once_built_in_bulk(tmp_path: Path) -> None:
    server = await started(tmp_path)
    cert, key, uri = client_certificate(tmp_path / "scada", "hmi")
    trust(server.config, cert)
    client = await secure_client(server.config.endpoint, cert, key, uri, "ada", PASSWORDS["ada"])
    try:
        async with client:
            signals = await node(client, f"Lines/{LINE}/Signals")
            children = await signals.get_children()
            names = [(await c.read_browse_name()).Name for c in children]
            assert names == [t.name for t in TAGS]  # every one, once, in the tag map's order
            value = await node(client, f"Lines/{LINE}/Signals/t299/Value")
            assert (await value.get_parent()).nodeid == children[-1].nodeid
            eu_range = await (await value.get_child("0:EURange")).read_value()
            assert (eu_range.Low, eu_range.High) == (0.0, 309.0)
            waiting = await value.read_data_value(raise_on_bad_status=False)
            assert waiting.StatusCode.value == ua.StatusCodes.BadWaitingForInitialData
    finally:
        await server.stop()


async def test_the_standard_address_space_comes_from_a_cache_after_the_first_start(
    tmp_path: Path,
) -> None:
    cache = cache_folder(tmp_path)  # the pki folder's parent: the state directory
    assert not cache.exists()
    server = await started(tmp_path)
    await server.stop()
    assert (cache / MARKER).is_file()
    assert not [p for p in cache.parent.iterdir() if p.name.startswith(".building-")]

    server = await started(tmp_path)  # loads the cache
    try:
        assert server.server.iserver.aspace._nodes.__class__.__name__ == "LazyLoadingDict"
        root = server.server.get_node(ua.NodeId(ua.ObjectIds.Server_ServerStatus_State))
        assert await root.read_value() == ua.ServerState.Running
    finally:
        await server.stop()


async def test_a_corrupt_cache_is_rebuilt_and_the_server_starts(tmp_path: Path) -> None:
    server = await started(tmp_path)
    await server.stop()
    cache = cache_folder(tmp_path)
    for part in cache.iterdir():
        if part.name != MARKER:
            part.write_bytes(b"\x00not a shelf\xff" * 10)
    server = await started(tmp_path)
    try:
        objects = await server.server.nodes.objects.get_children()
        assert len(objects) >= 3  # Server, Lines, Agent
    finally:
        await server.stop()
    assert (cache / MARKER).is_file()
    shutil.rmtree(cache)


async def test_a_state_directory_that_cannot_hold_the_cache_starts_without_one(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "opcua-cache"
    blocker.write_text("not a folder")  # mkdir fails as on a read-only or odd state directory
    server = ScadaServer(scada_config(tmp_path, free_port()), LINE, TAGS[:3], [], "1", 1.0)
    await server.start()
    try:
        health = server.server.get_node(server.node_id("Agent/Health"))
        value = await health.read_data_value(raise_on_bad_status=False)
        assert value.StatusCode.value == ua.StatusCodes.BadWaitingForInitialData  # not yet run
    finally:
        await server.stop()
    assert blocker.read_text() == "not a folder"
