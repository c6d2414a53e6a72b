"""`lineside hash-password` in a subprocess: the password comes from stdin, never argv."""

from __future__ import annotations

import subprocess
import sys

from agent.config.passwords import verify_password


def test_hash_password_reads_stdin_never_argv() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "agent", "hash-password"], input="s3cret-enough\n",
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert verify_password("s3cret-enough", run.stdout.strip())
    assert "s3cret-enough" not in run.stdout + run.stderr
    short = subprocess.run(
        [sys.executable, "-m", "agent", "hash-password"], input="short\n",
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    with_arg = subprocess.run(
        [sys.executable, "-m", "agent", "hash-password", "s3cret-enough"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert with_arg.returncode == 2 and "unrecognized arguments" in with_arg.stderr
