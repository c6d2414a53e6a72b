"""Ed25519 signatures over the exact bytes of a bundle's manifest, and the device's trust store.

The signature file (`manifest.sig`, JSON) names the key that made it, so a device can hold
several public keys at once and keys can be rotated without a flag day:

    {"format": 1, "algorithm": "ed25519", "key_id": "<16 hex>", "signature": "<base64>"}

`key_id` is the first 16 hex digits of the sha256 of the raw 32-byte public key. The trust
directory holds one PEM public key per file (`*.pub`); the device never holds a private key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.bundles.jsonbounds import parse_json
from agent.bundles.refusals import Refusal, UpdateRefused, shown

SIGNATURE_FORMAT = 1
SIGNATURE_NAME = "manifest.sig"
ALGORITHM = "ed25519"
MAX_SIGNATURE_BYTES = 4096


def key_id(public: Ed25519PublicKey) -> str:
    """The short id of a public key: 16 hex digits of the sha256 of its raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> bytes:
    """A public key as PEM (SubjectPublicKeyInfo)."""
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_pem(private: Ed25519PrivateKey) -> bytes:
    """A private key as unencrypted PKCS#8 PEM (keep it on the workstation, mode 0600)."""
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read a PEM ed25519 private key; raise ValueError saying what is wrong."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an ed25519 private key")
    return key


def sign_manifest(manifest: bytes, private: Ed25519PrivateKey) -> bytes:
    """The signature file (JSON bytes) for the exact manifest bytes."""
    doc = {
        "format": SIGNATURE_FORMAT,
        "algorithm": ALGORITHM,
        "key_id": key_id(private.public_key()),
        "signature": base64.b64encode(private.sign(manifest)).decode("ascii"),
    }
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


@dataclass(frozen=True)
class TrustStore:
    """The public keys a device accepts bundles from, by key id."""

    keys: dict[str, Ed25519PublicKey]
    source: str = ""

    @classmethod
    def load(cls, directory: Path) -> TrustStore:
        """Read every `*.pub` PEM file of a directory; a file that is not a key is an error."""
        keys: dict[str, Ed25519PublicKey] = {}
        if not directory.is_dir():
            return cls(keys, str(directory))
        for path in sorted(directory.glob("*.pub")):
            try:
                key = serialization.load_pem_public_key(path.read_bytes())
            except (OSError, ValueError) as exc:
                raise ValueError(f"{path}: not a PEM public key ({exc})") from exc
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError(f"{path}: not an ed25519 public key")
            keys[key_id(key)] = key
        return cls(keys, str(directory))

    def verify(self, manifest: bytes, signature_file: bytes) -> str:
        """Check the signature file against the manifest bytes; return the key id used."""
        doc = parse_json(
            signature_file, SIGNATURE_NAME, Refusal.SIGNATURE_MALFORMED, MAX_SIGNATURE_BYTES
        )
        try:
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            fmt, algorithm = doc.get("format"), doc.get("algorithm")
            kid, text = doc["key_id"], doc["signature"]
            if not isinstance(kid, str) or not isinstance(text, str):
                raise ValueError("key_id and signature must be strings")
            signature = base64.b64decode(text, validate=True)
        except KeyError as exc:
            raise UpdateRefused(
                Refusal.SIGNATURE_MALFORMED, f"manifest.sig has no {exc.args[0]!r} field"
            ) from None
        except (ValueError, binascii.Error) as exc:
            raise UpdateRefused(
                Refusal.SIGNATURE_MALFORMED, f"manifest.sig cannot be read: {exc}"
            ) from None
        if fmt != SIGNATURE_FORMAT or algorithm != ALGORITHM:
            raise UpdateRefused(
                Refusal.SIGNATURE_MALFORMED,
                f"manifest.sig is format {shown(fmt)}/{shown(algorithm)}; this agent reads "
                f"{SIGNATURE_FORMAT}/{ALGORITHM}",
            )
        key = self.keys.get(kid)
        if key is None:
            known = ", ".join(sorted(self.keys)) or "none"
            raise UpdateRefused(
                Refusal.UNKNOWN_KEY,
                f"signed by key {shown(kid, 40)}, which is not in the trust directory "
                f"{self.source} "
                f"(trusted: {known}); copy its .pub file there if you trust it",
            )
        try:
            key.verify(signature, manifest)
        except InvalidSignature:
            raise UpdateRefused(
                Refusal.BAD_SIGNATURE,
                f"the signature by key {kid} does not match manifest.json: the manifest or "
                "the signature was changed after signing",
            ) from None
        return kid
