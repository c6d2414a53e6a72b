"""`lineside bundle verify|install|usb`: check and install signed model bundles by hand.

Exit status: 0 accepted, 3 refused (one line on stderr: `refused (<reason>): <detail>`),
2 usage errors (bad arguments, unreadable trust directory or site config).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from agent.bundles.refusals import UpdateRefused
from agent.bundles.store import DEFAULT_STATE_DIR, DEFAULT_TRUST_DIR, ModelStore
from agent.errors import ConfigError

ACCEPTED, USAGE, REFUSED = 0, 2, 3
PROG = "lineside bundle"


class UsageError(Exception):
    """An argument cannot be used (exit 2)."""


def _trust(args: argparse.Namespace) -> Any:
    from agent.bundles.signing import TrustStore

    try:
        trust = TrustStore.load(Path(args.trust))
    except ValueError as exc:
        raise UsageError(f"--trust: {exc}") from None
    if not trust.keys:
        raise UsageError(
            f"--trust {args.trust}: no *.pub keys there; copy the public key made by "
            "`lineside-export keygen` into it"
        )
    return trust


def _site(args: argparse.Namespace) -> Any:
    """The site config's view of the line the bundle is for (`--line`), or None."""
    if not args.config:
        return None
    from agent.config import load_config

    try:
        site = load_config(Path(args.config))
    except ConfigError as exc:
        raise UsageError(f"--config: {exc}") from None
    names = site.line_names
    if args.line is None and len(names) > 1:
        raise UsageError(
            f"--config {args.config} has {len(names)} lines ({', '.join(names)}): "
            "say which this bundle is for with --line NAME"
        )
    try:
        return site.line_view(args.line or names[0])
    except KeyError:
        raise UsageError(
            f"--line {args.line!r} is not a line of {args.config}; its lines: {', '.join(names)}"
        ) from None


def _store_root(args: argparse.Namespace) -> Path:
    """The store of the line: `--state-dir`, or its `lines/<line>` with `--line` (or the
    site's only line when it is of the `[[line]]` form)."""
    from agent.config.lines import line_store

    site = _site(args)
    several = site.store_root is not None if site is not None else args.line is not None
    line = site.line if site is not None else args.line
    return line_store(Path(args.state_dir), line) if several else Path(args.state_dir)


def _owned_store(args: argparse.Namespace) -> ModelStore:
    """The store, refusing to write into it as root when the agent's user owns it."""
    store = ModelStore(_store_root(args))
    if os.geteuid() == 0 and store.root.is_dir() and store.root.stat().st_uid != 0:
        raise UsageError(
            f"{store.root} belongs to another user (the agent's): run this as that user, "
            "e.g. sudo -u lineside lineside bundle ..., so it can still roll back"
        )
    return store


def _verify(args: argparse.Namespace) -> str:
    from agent.bundles.install import verify_file

    store = ModelStore(_store_root(args)) if args.state_dir else None
    v = verify_file(Path(args.path), _trust(args), store=store, site=_site(args))
    m = v.manifest
    warned = "".join(f"; warning: {w}" for w in v.warnings)
    return f"ok: model {m.model_version} {m.label!r}, {len(m.files)} files, key {v.key_id}{warned}"


def _install(args: argparse.Namespace) -> str:
    from agent.bundles.install import install_file

    store = _owned_store(args)
    result = install_file(
        Path(args.path),
        store,
        _trust(args),
        site=_site(args),
        allow_downgrade=args.allow_downgrade,
    )
    return result.describe()


def _usb(args: argparse.Namespace) -> str:
    from agent.bundles.usb import install_from_stick

    result_file = Path(args.result_file) if args.result_file else None
    outcome = install_from_stick(
        Path(args.path), _owned_store(args), _trust(args), _site(args), result_file
    )
    for where in outcome.unwritten:
        print(f"{PROG}: result file not written: {where}", file=sys.stderr)
    if outcome.installed is None:
        raise outcome.refusals[0]
    return outcome.installed.describe()


def cmd_bundle(args: argparse.Namespace) -> int:
    """Run one `bundle` action; map refusals to exit 3 and usage errors to exit 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        print(args.bundle_action(args))
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return USAGE
    except UpdateRefused as exc:
        print(f"{PROG}: {' '.join(str(exc).split())}", file=sys.stderr)
        return REFUSED
    return ACCEPTED


def add_parser(sub: Any) -> None:
    """Add `bundle verify|install|usb` to the subparsers of `lineside`."""
    p = sub.add_parser("bundle", help="verify or install a signed model bundle file")
    actions = p.add_subparsers(dest="bundle_command", required=True, metavar="ACTION")

    def common(q: argparse.ArgumentParser, state_required: bool) -> None:
        """The options every action shares."""
        q.add_argument(
            "--trust", default=str(DEFAULT_TRUST_DIR),
            help=f"directory of trusted public keys, *.pub (default {DEFAULT_TRUST_DIR})",
        )  # fmt: skip
        q.add_argument("--config", help="site config: the bundle's channels must be its tags")
        q.add_argument(
            "--line",
            help="the line the bundle is for (required when the site has several); its store "
            "is <state-dir>/lines/<line>",
        )
        q.add_argument(
            "--state-dir",
            default=str(DEFAULT_STATE_DIR) if state_required else None,
            help="the model store" + (f" (default {DEFAULT_STATE_DIR})" if state_required else
                                      "; with it, downgrades and running-model fit are checked"),
        )  # fmt: skip

    q = actions.add_parser("verify", help="every check of an install; installs nothing")
    q.add_argument("path", help="bundle file made by `lineside-export sign`")
    common(q, state_required=False)
    q.set_defaults(func=cmd_bundle, bundle_action=_verify)
    q = actions.add_parser("install", help="verify, then install atomically")
    q.add_argument("path", help="bundle file made by `lineside-export sign`")
    common(q, state_required=True)
    q.add_argument(
        "--allow-downgrade",
        action="store_true",
        help="install a version not above the highest installed (logged)",
    )
    q.set_defaults(func=cmd_bundle, bundle_action=_install)
    q = actions.add_parser("usb", help="install the newest valid bundle of a mounted stick")
    q.add_argument("path", help="mount point of the stick (bundles in lineside/*.bundle)")
    common(q, state_required=True)
    q.add_argument(
        "--result-file",
        help="also write the result here (the stick is mounted read-only by the USB unit, "
        "which copies this file onto it afterwards)",
    )
    q.set_defaults(func=cmd_bundle, bundle_action=_usb)
