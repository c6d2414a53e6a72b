"""Salted password hashes for OPC-UA users: scrypt, with its cost stored in the hash.

Format (one string, safe in TOML): ``scrypt$n=16384,r=8,p=1$<salt, base64>$<key, base64>``.
Cost: n=2**14, r=8, p=1 uses 16 MiB and about 70 ms of one core per check on a small x86
box; the cost sits in each hash, so it can be raised later without breaking old hashes.
`lineside hash-password` prints such a string; the password itself is never stored.

>>> h = hash_password("correct horse")
>>> verify_password("correct horse", h), verify_password("wrong", h)
(True, False)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
MAX_N = 2**20  # refuse absurd costs from a config file: one login must not take minutes
_FORMAT = re.compile(r"scrypt\$n=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)")
FORMAT_HINT = "scrypt$n=16384,r=8,p=1$<salt>$<key>, as printed by `lineside hash-password`"


@dataclass(frozen=True)
class PasswordHash:
    """A parsed scrypt hash: cost parameters, salt and derived key."""

    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    def derive(self, password: str) -> bytes:
        """The scrypt key of `password` with this hash's salt and cost."""
        return hashlib.scrypt(
            password.encode("utf-8"),
            salt=self.salt,
            n=self.n,
            r=self.r,
            p=self.p,
            dklen=len(self.key),
            maxmem=256 * self.n * self.r + 2**20,
        )


def parse_hash(text: str) -> PasswordHash:
    """Parse a stored hash; raise ValueError saying what is wrong with it."""
    match = _FORMAT.fullmatch(text)
    if match is None:
        raise ValueError("is not a scrypt hash")
    n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    if n < 2**10 or n > MAX_N or n & (n - 1):
        raise ValueError(f"scrypt n={n} must be a power of two between 1024 and {MAX_N}")
    if not (1 <= r <= 32 and 1 <= p <= 16):
        raise ValueError(f"scrypt r={r}, p={p} are outside 1..32 and 1..16")
    try:
        salt = base64.b64decode(match.group(4), validate=True)
        key = base64.b64decode(match.group(5), validate=True)
    except ValueError:
        raise ValueError("salt or key is not valid base64") from None
    if len(salt) < 8 or len(key) < 16:
        raise ValueError("salt or key is too short: the hash was cut")
    return PasswordHash(n, r, p, salt, key)


def hash_password(password: str) -> str:
    """A new salted scrypt hash of `password`, in the config format."""
    salt = os.urandom(SALT_BYTES)
    key = PasswordHash(SCRYPT_N, SCRYPT_R, SCRYPT_P, salt, b"\0" * KEY_BYTES).derive(password)
    b64 = base64.b64encode
    return f"scrypt$n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}${b64(salt).decode()}${b64(key).decode()}"


def verify_password(password: str, stored: str | PasswordHash) -> bool:
    """True if `password` matches the stored hash (constant-time comparison)."""
    parsed = parse_hash(stored) if isinstance(stored, str) else stored
    return hmac.compare_digest(parsed.derive(password), parsed.key)
