"""`lineside ...`: the device-side command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agent import __version__
from agent.cli import bundle, events, health, passwords, probe, record, score, spc
from agent.errors import BundleError, ConfigError, LinesideError

if TYPE_CHECKING:
    from agent.config import SiteConfig


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The protocol libraries are chatty at INFO; their problems reach us as exceptions.
    quiet = max(logging.WARNING, getattr(logging, level.upper()))
    for noisy in ("pymodbus", "asyncua"):
        logging.getLogger(noisy).setLevel(quiet)


def check_file(path: Path, check_bundle: bool) -> str:
    """Validate one config file of any kind (site, Modbus tag map, OPC-UA node map)."""
    import tomllib

    from agent.config import load_config, load_node_map, load_tag_map

    try:
        with path.open("rb") as f:
            root = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        root = {}  # the loader below reports it with the usual message
    if "mode" in root and "plc" not in root:
        from agent.config.catalogue import load_catalogue

        return f"failure-mode catalogue, {len(load_catalogue(path).modes)} modes"
    if "line" in root or "plc" in root or not root:
        config = load_config(path)
        lines = [_check_line(config, view, check_bundle) for view in config.line_views()]
        if len(lines) == 1:
            return f"site, {lines[0]}"
        return f"site, {len(lines)} lines: " + "; ".join(lines)
    if "server" in root or any("node_id" in t for t in root.get("tag", []) if isinstance(t, dict)):
        return f"OPC-UA node map, {len(load_node_map(path).tags)} nodes"
    return f"Modbus tag map, {len(load_tag_map(path).tags)} tags"


def _check_line(site: SiteConfig, config: SiteConfig, check_bundle: bool) -> str:
    """One line of a site checked (its bundle, or that it has a tag to learn from)."""
    names = [line.name for line in site.lines]
    prefix = f"line[{names.index(config.line)}]." if names else ""  # a site of several lines
    if check_bundle:
        from agent.bundles.checks import check_bundle_fits

        check_bundle_fits(config, field=f"{prefix}model.bundle")
    if config.bundle is None:
        from agent.pipeline.build import build_commissioning

        try:
            build_commissioning(config, None)  # refuses a line with no tag to learn from
        except ConfigError as exc:
            raise ConfigError(prefix + exc.field, exc.problem, exc.fix, source=exc.source) from None
    model = (
        f"no model: commissioning mode, learns for {config.learning.period_s:g} s"
        if config.bundle is None
        else f"model {config.bundle}"
    )
    return f"line {config.line}, {len(config.plcs)} connection(s), {len(config.tags)} tags, {model}"


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate config files; exit 2 naming every wrong field, one line each."""
    failed = False
    for name in args.config:
        try:
            what = check_file(Path(name), check_bundle=not args.no_bundle)
        except ConfigError as exc:
            for error in exc.errors:
                print(f"lineside check-config: {error}", file=sys.stderr)
            failed = True
        else:
            print(f"{name}: ok ({what})")
    return 2 if failed else 0


async def _run_until_signalled(config_path: Path) -> None:
    from agent.runtime.daemon import run_daemon

    await run_daemon(config_path)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM/SIGINT (SIGHUP reloads the site config)."""
    from agent.ops.logs import configure_logging

    configure_logging(args.log_level)
    try:
        asyncio.run(_run_until_signalled(Path(args.config)))
    except (ConfigError, BundleError) as exc:
        for problem in exc.errors if isinstance(exc, ConfigError) else [exc]:
            print(f"lineside run: {problem}", file=sys.stderr)
        return 2
    except LinesideError as exc:
        print(f"lineside run: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The simulated line end to end."""
    from agent.demo.run import run_demo

    _setup_logging("error")
    return run_demo(
        args.seconds, args.speedup, Path(args.state_dir), args.json, not args.no_view, args.seed
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    """Serve the simulated line over Modbus TCP, or write a historian CSV."""
    if args.historian:
        from agent.demo.run import write_historian

        write_historian(Path(args.historian), rows=args.rows, seed=args.seed)
        print(f"wrote {args.rows} rows of normal operation to {args.historian}")
        return 0
    from agent.demo.simulator.plc import SimulatedPlc
    from agent.demo.simulator.process import ExtrusionLine

    _setup_logging(args.log_level)

    ports = args.port or [5020]

    async def serve() -> None:
        # One independent line per port (seed, seed + 1, ...): a site of several lines.
        plcs = [
            SimulatedPlc(
                ExtrusionLine(seed=args.seed + i),
                host=args.host,
                port=port,
                period_s=1.0 / args.speedup,
            )
            for i, port in enumerate(ports)
        ]
        for plc, port in zip(plcs, ports, strict=True):
            await plc.start()
            print(f"simulated extrusion line on modbus-tcp {args.host}:{port}, unit 1")
        try:
            await asyncio.gather(*(plc.run() for plc in plcs))
        finally:
            for plc in plcs:
                await plc.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


# The subcommands that live in their own module of agent/cli, each with its `add_parser`.
SUBCOMMANDS = (
    spc.add_parser,
    bundle.add_parser,
    events.add_parser,
    health.add_parser,
    score.add_parser,
    passwords.add_parser,
    probe.add_parser,
    record.add_parser,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `lineside`."""
    parser = argparse.ArgumentParser(prog="lineside", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lineside {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the agent (the daemon)")
    p.add_argument("--config", required=True, help="site config (TOML)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "check-config", help="validate site configs, tag maps, node maps; exit 2 naming each field"
    )
    p.add_argument("config", nargs="+", help="site config, Modbus tag map or OPC-UA node map")
    p.add_argument(
        "--no-bundle", action="store_true", help="do not check the model bundle a site names"
    )
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("demo", help="the built-in simulated line with injected faults")
    p.add_argument("--seconds", type=float, default=60.0, help="wall-clock length (default 60)")
    p.add_argument("--speedup", type=float, default=10.0, help="line seconds per second")
    p.add_argument("--state-dir", default=".demo", help="where the demo keeps bundle and journal")
    p.add_argument("--json", action="store_true", help="print the summary as JSON, last line")
    p.add_argument("--no-view", action="store_true", help="no live terminal view")
    p.add_argument("--seed", type=int, default=2024, help="seed of the simulated line")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("simulate", help="serve the simulated line over Modbus TCP")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--port",
        type=int,
        action="append",
        help="Modbus TCP port (default 5020); repeat it to serve one simulated line per port",
    )
    p.add_argument("--speedup", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--historian", help="write a CSV of normal operation instead of serving")
    p.add_argument("--rows", type=int, default=7200)
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_simulate)

    for register in SUBCOMMANDS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `lineside` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
