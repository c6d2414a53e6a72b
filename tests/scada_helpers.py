"""Helpers for SCADA server tests: client certificates, secure clients, server configs, the
demo line's tags and a node by its browse path."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Any

from asyncua import Client, Node, ua
from asyncua.crypto import cert_gen, security_policies
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from agent.config import load_config
from agent.config.opcua import OpcUaConfig, ScadaLimits, ScadaUser
from agent.config.passwords import hash_password, parse_hash
from agent.paths import firmware_configs

POLICIES = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}
PASSWORDS = {"ada": "viewer-pass-1", "otto": "operator-pass-1"}
LINE = "extruder-1"


def site_tags() -> list[Any]:
    """Every tag of the demo site's PLCs."""
    site = load_config(firmware_configs() / "sites" / "demo-extruder.toml")
    return [t for plc in site.plcs for t in plc.tags]


async def node(client: Client, path: str) -> Node:
    """The node of our server at `path` (e.g. `Lines/extruder-1/AlarmActive`)."""
    ns = await client.get_namespace_index("urn:lineside")
    return client.get_node(f"ns={ns};s={path}")


def client_certificate(folder: Path, name: str) -> tuple[Path, Path, str]:
    """A self-signed OPC-UA client certificate and key; returns (cert, key, application uri)."""
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"urn:test:{name}"
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key, name, {}, [x509.UniformResourceIdentifier(uri), x509.DNSName(socket.gethostname())],
        extended=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )  # fmt: skip
    cert_path, key_path = folder / f"{name}.der", folder / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return cert_path, key_path, uri


def trust(config: OpcUaConfig, cert: Path) -> None:
    """Place a client certificate in the server's trusted directory."""
    config.trusted_path.mkdir(parents=True, exist_ok=True)
    shutil.copy(cert, config.trusted_path / cert.name)


def scada_config(tmp: Path, port: int, **changes: object) -> OpcUaConfig:
    """A secure server config with a viewer `ada` and an operator `otto`."""
    users = (
        ScadaUser("ada", "viewer", parse_hash(hash_password(PASSWORDS["ada"]))),
        ScadaUser("otto", "operator", parse_hash(hash_password(PASSWORDS["otto"]))),
    )
    fields: dict[str, object] = {
        "endpoint": f"opc.tcp://127.0.0.1:{port}/lineside",
        "users": users,
        "pki_dir": tmp / "pki",
        "limits": ScadaLimits(lockout_after=3, lockout_s=60.0),
    }
    fields.update(changes)
    return OpcUaConfig(**fields)  # type: ignore[arg-type]


async def viewer_client(config: OpcUaConfig, folder: Path, password: str) -> Client:
    """A trusted SignAndEncrypt client logged in as the demo's `viewer` (not connected)."""
    cert, key, uri = client_certificate(folder, "scada")
    trust(config, cert)
    return await secure_client(config.endpoint, cert, key, uri, "viewer", password)


class SecureClient(Client):  # type: ignore[misc]
    """An asyncua client that fetches the server's endpoints and sets security on connect.

    (asyncua's `set_security` connects at once, so it cannot be set up before the server.)"""

    def __init__(self, endpoint: str, policy: str, cert: Path, key: Path,
                 mode: ua.MessageSecurityMode, watchdog_s: float = 1.0) -> None:  # fmt: skip
        super().__init__(endpoint, timeout=10, watchdog_intervall=watchdog_s)
        self._security = (POLICIES[policy], str(cert), str(key), mode)

    async def connect(self) -> None:
        """Set the security from the server's endpoints, then connect."""
        policy, cert, key, mode = self._security
        await self.set_security(policy, cert, key, mode=mode)
        await super().connect()


async def secure_client(
    endpoint: str,
    cert: Path,
    key: Path,
    uri: str,
    user: str | None,
    password: str | None,
    policy: str = "Basic256Sha256",
    mode: ua.MessageSecurityMode = ua.MessageSecurityMode.SignAndEncrypt,
) -> Client:
    """A client set up (not connected) for a secure endpoint with a user name."""
    client = SecureClient(endpoint, policy, cert, key, mode)
    client.application_uri = uri
    if user is not None:
        client.set_user(user)
        client.set_password(password or "")
    return client


async def trusted_anonymous_client(site: Path, folder: Path) -> Client:
    """A SignAndEncrypt client, not connected, whose certificate the server of the site file
    `site` trusts, without a user (the example site allows anonymous reads over it)."""
    opcua = load_config(site).opcua
    cert, key, uri = folder / "bench.der", folder / "bench.pem", "urn:test:bench"
    if not cert.exists():  # one certificate per folder: the server reads its trust list once
        cert, key, uri = client_certificate(folder, "bench")
        trust(opcua, cert)
    return await secure_client(opcua.endpoint, cert, key, uri, None, None)
