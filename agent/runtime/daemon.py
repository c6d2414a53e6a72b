"""`lineside run` as a daemon: signals, reload, a bounded drain.

SIGTERM / SIGINT  stop: cancel the root task group, then drain (flush the journal, close PLC
                  connections and the OPC-UA server) within `agent.runtime.app.DRAIN_TIMEOUT_S`;
                  the whole stop within STOP_BUDGET_S, below the unit's TimeoutStopSec=20.
                  A second one exits at once (os._exit: a drain stuck on a dead disk must
                  not keep the line PC waiting for SIGKILL).
SIGHUP            reload the site config: load and validate it off the event loop,
                  apply what is reloadable, refuse the rest keeping the old.

Reloadable without a restart (the model stays loaded, the window, charts and alarm states
carry on):
    detection.raise_after, clear_after, clear_ratio, spc_hits, spc_span
    journal.retention_days, journal.max_mb
    and in a site of several lines each line's line[i].detection.* of the list above
Everything else needs `systemctl restart lineside`: line.name, model.* (a new model comes
through a bundle swap, not a reload), detection.flatline_samples (the SPC charts count it),
opcua.*, journal.path and every [[plc]] (connections are opened at start).

A reload that fails to load, or that changes anything of the second list, is refused as a
whole and the running config stays; the log says why.

A line with no model (commissioning mode) runs until a first bundle is installed in its state
directory's store (`lineside bundle install ... --state-dir`, and `--line NAME` in a site of
several lines: `<state dir>/lines/NAME`); the agent then drains and is built again with that
line on that bundle in the same process, within seconds (agent.runtime.commissioning).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from pathlib import Path

from agent.bundles.checks import check_bundle_fits
from agent.config import SiteConfig, load_config
from agent.errors import LinesideError
from agent.ops.systemd import notify, reloading
from agent.runtime.app import Agent

log = logging.getLogger(__name__)
FORCED_EXIT_CODE = 130
# The whole stop, drain included, must end before the unit's TimeoutStopSec=20 sends SIGKILL.
STOP_BUDGET_S = 18.0


async def reload_config(agent: Agent, path: Path) -> bool:
    """Load `path` in a thread and hand it to `agent.reload`; False if refused."""
    reloading()
    try:
        new = await asyncio.to_thread(load_config, path)
    except LinesideError as exc:
        log.error("reload refused, running config kept: %s", exc)
        return False
    finally:
        notify(f"READY=1\nSTATUS={agent.status()}")
    return not agent.reload(new).refused


async def run_daemon(config_path: Path) -> None:
    """Build the agent from `config_path` and run it until a stop signal.

    A line in commissioning mode (no `[model] bundle`) runs until its first bundle is
    installed; the agent is then built again on that bundle, in the same process."""
    config = load_config(config_path)
    for view in config.line_views():
        check_bundle_fits(view, field=_model_field(config, view.line))
    agents = [Agent(config)]  # the running one last
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    stops = 0
    reloads: set[asyncio.Task[bool]] = set()

    def on_stop() -> None:
        nonlocal stops
        stops += 1
        if stops > 1:
            log.warning("second stop signal: exiting now without finishing the drain")
            logging.shutdown()
            os._exit(FORCED_EXIT_CODE)
        log.info("stop signal: draining (journal, PLC connections, OPC-UA server)")
        # A thread, not the event loop: it fires even if the loop itself is stuck.
        timer = threading.Timer(STOP_BUDGET_S, stop_overrun, args=(loop,))
        timer.daemon = True
        timer.start()
        task.cancel()

    def on_hup() -> None:
        t = loop.create_task(reload_config(agents[-1], config_path), name="reload")
        reloads.add(t)
        t.add_done_callback(reloads.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                agent = agents[-1]
                await agent.run()
                if agent.model_arrived is None:
                    break
                agents[-1] = on_first_model(
                    agent.config, agent.model_arrived, agent.model_arrived_line
                )
    finally:
        # SIGTERM/SIGINT stay with the loop through asyncio.run's own shutdown (it closes the
        # loop, which removes them): a second signal there must still force the exit.
        loop.remove_signal_handler(signal.SIGHUP)


def on_first_model(config: SiteConfig, bundle: Path, line: str = "") -> Agent:
    """The agent again, line `line` ("": the only one) on its first installed bundle (the
    other lines start again as they were); if that does not fit the line, it stays in
    commissioning mode and says why."""
    line = line or config.line
    with_model = config.with_bundle(line, bundle)
    try:
        check_bundle_fits(with_model.line_view(line))
        return Agent(with_model)
    except LinesideError as exc:
        log.error("the installed bundle cannot run line %s, still commissioning: %s", line, exc)
        agent = Agent(config)
        watch = agent.line(line).first_model
        if watch is not None:
            watch.ignore(bundle)
        return agent


def _model_field(config: SiteConfig, line: str) -> str:
    """`model.bundle`, or `line[i].model.bundle` in a site of several lines."""
    names = [ln.name for ln in config.lines]
    return f"line[{names.index(line)}].model.bundle" if line in names else "model.bundle"


def stop_overrun(loop: asyncio.AbstractEventLoop) -> None:
    """The stop took too long: log what is still running, then exit before systemd's SIGKILL."""
    pending = []
    with contextlib.suppress(RuntimeError):  # the set may change under us: best effort
        for t in asyncio.all_tasks(loop):
            frames = t.get_stack(limit=1)
            where = f"{frames[0].f_code.co_filename}:{frames[0].f_lineno}" if frames else "?"
            pending.append(f"{t.get_name()} at {where}")
    log.error(
        "stop did not finish in %.0f s; exiting now. Still running: %s",
        STOP_BUDGET_S,
        "; ".join(sorted(pending)) or "no tasks (blocked in a thread or at interpreter exit)",
    )
    logging.shutdown()
    os._exit(1)
