"""`[web]` wired to the agent's lines: one board per line, filled by that line's detection
results, explanations and comms edges, and the status page that serves them (agent.sinks.web)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent.sinks.web.board import LineBoard, StatusBoard, line_board
from agent.sinks.web.server import StatusPage, journal_history

if TYPE_CHECKING:
    from agent.config import SiteConfig
    from agent.runtime.line_runner import LineRunner
    from agent.sources.base import Source


def build_status_page(
    config: SiteConfig, lines: Sequence[LineRunner], sources: Sequence[Source]
) -> tuple[StatusBoard | None, StatusPage | None]:
    """The board and the page for `[web]`, or (None, None) without it. Each line's board is a
    listener of that line: a few dict writes per result, never a wait on a browser."""
    if config.web is None:
        return None, None
    boards: dict[str, LineBoard] = {}
    for runner in lines:
        manifest = runner.updates.bundle.manifest if runner.updates is not None else None
        board = line_board(runner.name, list(runner.monitor.channels), manifest)
        board.model = functools.partial(model_view, runner)
        runner.board = board
        runner.listeners.append(board.observe)
        if runner.explainer is not None:
            runner.explainer.publishers.append(functools.partial(_explained, board))
        boards[runner.name] = board
    status = StatusBoard(
        boards,
        model=functools.partial(model_view, lines[0]),
        plcs=functools.partial(plcs_view, sources),
    )
    history = functools.partial(journal_history, config.journal_path)
    return status, StatusPage(config.web, config.opcua.users, status, history)


async def _explained(board: LineBoard, explanation: Any) -> None:
    board.explained(explanation.event_id, explanation.text)


def model_view(runner: LineRunner) -> dict[str, Any]:
    """A line's model as the page shows it: version, probation status, last update."""
    if runner.updates is None:
        return {"version": runner.model_version, "status": "commissioning", "last_update": ""}
    state = runner.updates.state
    return {"version": state.version_text, "status": state.status,
            "last_update": state.last_update}  # fmt: skip


def plcs_view(sources: Sequence[Source]) -> list[dict[str, Any]]:
    """Every PLC link's comms state."""
    return [
        {"name": s.status.name, "state": s.status.state, "error": s.status.last_error}
        for s in sources
    ]
