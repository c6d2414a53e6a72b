"""`lineside hash-password`: print the config hash of a password read from the terminal or stdin."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any, TextIO

from agent.config.passwords import hash_password


def read_new_password(stdin: TextIO, stderr: TextIO) -> str:
    """The password to hash: prompted twice on a terminal, else the first line of stdin."""
    if stdin.isatty():
        first = getpass.getpass("New OPC-UA password: ", stream=stderr)
        if first != getpass.getpass("Again: ", stream=stderr):
            raise ValueError("the two passwords differ")
    else:
        first = stdin.readline().rstrip("\r\n")
    if len(first) < 8:
        raise ValueError("use at least 8 characters")
    return first


def cmd_hash_password(args: argparse.Namespace) -> int:
    """`lineside hash-password`: read a password (never from argv), print its config hash."""
    try:
        password = read_new_password(sys.stdin, sys.stderr)
    except (ValueError, EOFError) as exc:
        print(f"lineside hash-password: {exc}", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def add_parser(sub: Any) -> None:
    """Register `lineside hash-password` on the CLI's subparsers."""
    p = sub.add_parser(
        "hash-password",
        help="hash an OPC-UA user's password for [[opcua.user]] password_hash (reads stdin)",
    )
    p.set_defaults(func=cmd_hash_password)
