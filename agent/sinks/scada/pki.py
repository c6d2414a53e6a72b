"""The server's own certificate and key: generated, checked, written so no crash breaks them.

The generated pair lives in `<pki_dir>/own/`. Each file is written to a temporary name beside
it, flushed to disk and renamed over the old one, so a full disk or a power cut leaves either
the old file or the new one, never a torn or empty one. A key or certificate that does not
parse (a 0-byte key from a full disk, a truncated file) is moved aside as `<name>.unreadable`
and generated anew, with a WARNING; a certificate that has expired, was issued for another
host or URI, or does not match the key is renewed. An operator's own pair (`opcua.certificate`
and `opcua.private_key`) is never written: one that does not parse stops the start with the
field to fix.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import socket
from pathlib import Path

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from agent.config.opcua import OpcUaConfig
from agent.errors import StartupError

log = logging.getLogger(__name__)
CERT_DAYS = 365 * 2


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 of a certificate's DER form, hex."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data`: a temporary file beside it, fsync, rename, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()  # left by a crash in the middle of an earlier write
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise StartupError(
            f"cannot write {path}: {exc.strerror or exc} (fix: free space on, or make writable, "
            f"{path.parent}; the OPC-UA server needs its certificate and key)"
        ) from exc


def _read_key(path: Path) -> rsa.RSAPrivateKey | None:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    return key if isinstance(key, rsa.RSAPrivateKey) else None


def _read_cert(path: Path) -> x509.Certificate | None:
    try:
        data = path.read_bytes()
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except (OSError, ValueError):
        return None


def _set_aside(path: Path, what: str) -> None:
    target = path.with_name(path.name + ".unreadable")
    size = path.stat().st_size
    try:
        os.replace(path, target)
    except OSError:
        target = path
    log.warning(
        "the OPC-UA server %s %s does not parse (%d bytes): kept as %s, generating a new one",
        what, path, size, target,
    )  # fmt: skip


def _cert_fits(cert: x509.Certificate, key: rsa.RSAPrivateKey, app_uri: str, host: str) -> bool:
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc - dt.timedelta(days=1):
        return False
    if cert.public_key() != key.public_key():
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return app_uri in san.get_values_for_type(x509.UniformResourceIdentifier) and host in (
        san.get_values_for_type(x509.DNSName)
    )


def _own_pair(config: OpcUaConfig) -> tuple[Path, Path]:
    cert_path, key_path = config.certificate_path, config.private_key_path
    if _read_key(key_path) is None:
        raise StartupError(
            f"opcua.private_key: {key_path} is not an unencrypted PEM RSA private key "
            "(fix: give the key of opcua.certificate, or leave both out to have them generated)"
        )
    if _read_cert(cert_path) is None:
        raise StartupError(
            f"opcua.certificate: {cert_path} is not a DER or PEM certificate "
            "(fix: give the server's certificate, or leave both out to have them generated)"
        )
    return cert_path, key_path


def _generated_key(key_path: Path) -> tuple[rsa.RSAPrivateKey, bool]:
    key = _read_key(key_path) if key_path.is_file() else None
    if key is not None:
        if key_path.stat().st_mode & 0o077:
            key_path.chmod(0o600)
        return key, False
    if key_path.exists():
        _set_aside(key_path, "key")
    key = cert_gen.generate_private_key()
    write_atomically(key_path, cert_gen.dump_private_key_as_pem(key), 0o600)
    log.info("generated the OPC-UA server key %s", key_path)
    return key, True


def ensure_server_certificate(config: OpcUaConfig, app_uri: str) -> tuple[Path, Path]:
    """The server's certificate and key: configured, or generated into the PKI directory."""
    for folder in (config.trusted_path, config.rejected_path):
        folder.mkdir(parents=True, exist_ok=True)
    if config.certificate is not None:
        return _own_pair(config)  # the operator's own certificate: never overwritten
    cert_path, key_path = config.certificate_path, config.private_key_path
    host = socket.gethostname()
    key, new_key = _generated_key(key_path)
    existing = _read_cert(cert_path) if cert_path.is_file() else None
    if existing is None and cert_path.exists():
        _set_aside(cert_path, "certificate")
    if existing is not None and not new_key and _cert_fits(existing, key, app_uri, host):
        return cert_path, key_path
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        f"Lineside {host}",
        {"organizationName": "Lineside"},
        [x509.UniformResourceIdentifier(app_uri), x509.DNSName(host), x509.DNSName("localhost")],
        extended=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        days=CERT_DAYS,
    )
    write_atomically(cert_path, cert.public_bytes(serialization.Encoding.DER))
    log.info("generated the OPC-UA server certificate %s (sha256 %s)", cert_path, fingerprint(cert))
    return cert_path, key_path
