"""`lineside-export keygen` and `lineside-export sign`: the signing half of an update."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _cmd_keygen(args: argparse.Namespace) -> int:
    from export.sign import keygen

    key, pub, kid = keygen(args.out)
    print(f"key id    {kid}")
    print(f"private   {key}  (keep it here; mode 0600)")
    print(f"public    {pub}  (copy into each device's trust directory, /etc/lineside/trust/)")
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    from export.sign import sign_bundle

    kid = sign_bundle(args.bundle, args.key, args.out)
    print(f"signed {args.bundle} with key {kid} -> {args.out} ({args.out.stat().st_size} bytes)")
    return 0


def add_signing_parsers(sub: Any) -> None:
    """Add `keygen` and `sign` to the subparsers of `lineside-export`."""
    keygen = sub.add_parser(
        "keygen",
        help="make an ed25519 signing key pair",
        description="Write <key id>.key (private, 0600) and <key id>.pub into --out.",
    )
    keygen.add_argument("--out", required=True, type=Path, metavar="DIR", help="key directory")
    keygen.set_defaults(handler=_cmd_keygen)
    sign = sub.add_parser(
        "sign",
        help="sign a bundle directory into one bundle file for the USB stick",
        description=(
            "Verify a bundle directory, sign the exact bytes of its manifest.json with an "
            "ed25519 key, and write one tar file: manifest.json, manifest.sig, the files."
        ),
    )
    sign.add_argument("bundle", type=Path, metavar="DIR", help="bundle directory (from train)")
    sign.add_argument("--key", required=True, type=Path, help="private key from keygen")
    sign.add_argument("--out", required=True, type=Path, metavar="FILE", help="bundle file")
    sign.set_defaults(handler=_cmd_sign)
