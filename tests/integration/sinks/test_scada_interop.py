"""Interoperability: node-opcua (an independent OPC UA stack, from npm) against our server.

node-opcua-client is installed by this test into build/node-opcua (once; reused after). The
test is skipped, saying why, only when node/npm are missing or the install itself fails.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.pipeline.line import LineResult
from agent.sinks.scada import ScadaServer
from agent.types import TagReading
from tests.helpers import REPO, free_port
from tests.scada_helpers import LINE, PASSWORDS, client_certificate, scada_config, site_tags, trust

NODE_OPCUA_VERSION = "2.186.4"
PREFIX = REPO / "build" / "node-opcua"
SCRIPT = REPO / "tests" / "fixtures" / "node_opcua_client.js"


def node_opcua() -> Path:
    """The node_modules folder with node-opcua-client, installed on first use."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed: cannot run the node-opcua interop test")
    modules = PREFIX / "node_modules"
    marker = modules / "node-opcua-client" / "package.json"
    if marker.is_file() and json.loads(marker.read_text())["version"] == NODE_OPCUA_VERSION:
        return modules
    PREFIX.mkdir(parents=True, exist_ok=True)
    install = subprocess.run(
        ["npm", "install", "--prefix", str(PREFIX), "--no-audit", "--no-fund", "--loglevel=error",
         f"node-opcua-client@{NODE_OPCUA_VERSION}"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if install.returncode != 0 or not marker.is_file():
        pytest.skip(f"npm could not install node-opcua-client: {install.stderr.strip()[-500:]}")
    return modules


@pytest.mark.timeout(400)
async def test_node_opcua_reads_and_subscribes_with_sign_and_encrypt(tmp_path: Path) -> None:
    modules = node_opcua()
    config = scada_config(tmp_path, free_port())
    tags = site_tags()
    server = ScadaServer(config, LINE, tags, [], "1", threshold=1.0)
    await server.start()
    publisher = asyncio.create_task(server.run())
    cert, key, uri = client_certificate(tmp_path / "client", "node-opcua")
    trust(config, cert)
    pem = tmp_path / "client" / "node-opcua-cert.pem"
    pem.write_bytes(
        x509.load_der_x509_certificate(cert.read_bytes()).public_bytes(serialization.Encoding.PEM)
    )

    async def feed() -> None:
        k = 0
        while True:
            k += 1
            server.offer(LineResult(time.time(), {"screw_speed": TagReading(50.0 + k)}, {}, {}, {},
                                    ()))  # fmt: skip
            await asyncio.sleep(0.1)

    feeder = asyncio.create_task(feed())
    ns = server.namespace_index
    try:
        process = await asyncio.create_subprocess_exec(
            "node", str(SCRIPT), config.endpoint, str(pem), str(key), uri, str(tmp_path / "pki"),
            "ada", PASSWORDS["ada"], f"ns={ns};s=Lines/{LINE}/Signals/screw_speed/Value",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={"NODE_PATH": str(modules), "PATH": "/usr/bin:/bin:/usr/local/bin"},
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 120)
    finally:
        feeder.cancel()
        publisher.cancel()
        await asyncio.gather(feeder, publisher, return_exceptions=True)
        await server.stop()
    assert process.returncode == 0, err.decode()[-2000:]
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    read, subscribed = lines[0]["read"], lines[1]
    assert read["status"] == "Good" and read["value"] > 50.0
    updates = subscribed["updates"]
    assert len(updates) >= 3 and updates == sorted(updates) and len(set(updates)) == len(updates)
    assert subscribed["security"] == 3  # MessageSecurityMode.SignAndEncrypt
    assert subscribed["policy"].endswith("#Basic256Sha256")
