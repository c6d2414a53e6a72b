"""`lineside demo` serves SCADA securely: SignAndEncrypt only, a fresh viewer password, a trust dir.

The demo runs as a real process; the test reads the printed endpoint, user, password and
trusted directory, refuses to connect untrusted, then connects as the SCADA integrator would.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asyncua import Client, ua

from tests.helpers import REPO
from tests.scada_helpers import client_certificate, secure_client


@pytest.mark.timeout(300)
async def test_demo_prints_credentials_and_serves_sign_and_encrypt_only(
    bundle_dir: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    shutil.copytree(bundle_dir, state / "bundle")
    demo = subprocess.Popen(
        [sys.executable, "-m", "agent", "demo", "--seconds", "60", "--speedup", "9",
         "--state-dir", str(state), "--no-view"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert demo.stdout is not None
    try:
        printed = "".join(demo.stdout.readline() for _ in range(5))
        endpoint = re.search(r"SCADA: (opc\.tcp://\S+?)[, ]", printed)
        password = re.search(r"user viewer, password (\S+) ", printed)
        trusted = re.search(r"accepted once placed in (\S+)", printed)
        assert endpoint and password and trusted, printed
        assert "SignAndEncrypt" in printed
        assert endpoint.group(1).startswith("opc.tcp://127.0.0.1:")
        cert, key, uri = client_certificate(tmp_path / "client", "integrator")

        deadline = time.monotonic() + 60
        while True:  # the demo's server is up once its endpoints answer
            probe = Client(endpoint.group(1), timeout=2)
            try:
                endpoints = await probe.connect_and_get_server_endpoints()
                break
            except (OSError, TimeoutError):
                assert time.monotonic() < deadline, "the demo's OPC-UA server never came up"
                time.sleep(0.5)
        assert {e.SecurityMode for e in endpoints} == {ua.MessageSecurityMode.SignAndEncrypt}

        shutil.copy(cert, Path(trusted.group(1)) / cert.name)
        client = await secure_client(endpoint.group(1), cert, key, uri, "viewer", password.group(1))
        async with client:
            ns = await client.get_namespace_index("urn:lineside")
            speed = client.get_node(f"ns={ns};s=Lines/extruder-1/Signals/screw_speed/Value")
            deadline = time.monotonic() + 30
            while not (await speed.read_data_value(raise_on_bad_status=False)).StatusCode.is_good():
                assert time.monotonic() < deadline, "no good screw_speed reading"
                time.sleep(0.2)
            assert 10.0 < await speed.read_value() < 200.0
    finally:
        demo.terminate()
        demo.communicate(timeout=30)
