"""The explainer worker: a separate process that turns facts into text, one job at a time.

It lowers its own priority (`os.nice`) and optionally pins itself to one CPU
(`os.sched_setaffinity`) before loading anything, so the detection loop keeps the machine.
It speaks over a `multiprocessing` pipe:

    parent -> worker   (job_id, Facts) | None (stop)
    worker -> parent   ("ready", info) once, then (job_id, text, info) per job;
                       text is None and info["error"] says why when the explainer raised

In `llm` mode the grounding guard judges every answer here, off the agent's event loop: info
["guard"] is "ok", or the reason it refused the answer (info["guard_detail"] says what it
found, truncated), and then text is None: a refused answer never leaves the worker.

A crash or a hang is the parent's business: it kills and restarts the process.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from agent.config.catalogue import Catalogue
from agent.config.explain import ExplainConfig
from agent.explain.facts import Facts
from agent.explain.guard import check

Explain = Callable[[Facts], "tuple[str, dict[str, Any]]"]
#: The defaults of a spec are those of `[explain]`.
_DEFAULT = ExplainConfig()


@dataclass(frozen=True)
class WorkerSpec:
    """Everything the worker needs, picklable: mode, language, model, budgets, priority, and
    the catalogue the guard checks causes against."""

    mode: str = _DEFAULT.mode
    language: str = _DEFAULT.language
    model: Path | None = _DEFAULT.model
    max_new_tokens: int = _DEFAULT.max_new_tokens
    max_seconds: float = _DEFAULT.max_seconds
    nice: int = _DEFAULT.nice
    cpu: int | None = _DEFAULT.cpu
    factory: str = "agent.explain.worker:default_explainer"  # module:function(spec) -> Explain
    catalogue: Catalogue = field(default_factory=lambda: _DEFAULT.catalogue)


def default_explainer(spec: WorkerSpec) -> Explain:
    """The template, or the ONNX LLM of `spec.model`, as an explain function."""
    if spec.mode == "llm":
        from agent.explain.llm import LlmExplainer

        assert spec.model is not None
        llm = LlmExplainer(spec.model, spec.max_new_tokens, spec.max_seconds)
        return lambda facts: llm.explain(facts, spec.language)
    from agent.explain.template import render

    return lambda facts: (render(facts, spec.language), {})


def _load(factory: str, spec: WorkerSpec) -> Explain:
    module, _, name = factory.partition(":")
    build: Callable[[WorkerSpec], Explain] = getattr(importlib.import_module(module), name)
    return build(spec)


def lower_priority(nice: int, cpu: int | None) -> dict[str, Any]:
    """Be nice to the detection loop; pin to `cpu` if given. Returns what was applied."""
    applied: dict[str, Any] = {"nice": os.nice(nice) if nice else os.nice(0)}
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
        applied["cpus"] = sorted(os.sched_getaffinity(0))
    return applied


def serve(conn: Connection, spec: WorkerSpec) -> None:
    """The worker process's main: set priority, build the explainer, answer jobs until told."""
    applied = lower_priority(spec.nice, spec.cpu)
    started = time.perf_counter()
    explain = _load(spec.factory, spec)
    conn.send(("ready", applied | {"load_s": time.perf_counter() - started, "pid": os.getpid()}))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return  # the parent went away
        if job is None:
            return
        job_id, facts = job
        t0 = time.perf_counter()
        try:
            text, info = explain(facts)
        except Exception as exc:  # an explainer bug must not take the worker down
            conn.send((job_id, None, {"error": f"{type(exc).__name__}: {exc}"}))
            continue
        info = info | {"seconds": time.perf_counter() - t0}
        answer: str | None = text
        if spec.mode == "llm":
            answer, info = guarded(text, facts, spec, info)
        conn.send((job_id, answer, info))


GUARD_DETAIL = 200  # characters of what the guard found, kept for the log and the journal


def guarded(
    text: object, facts: Facts, spec: WorkerSpec, info: dict[str, Any]
) -> tuple[str | None, dict[str, Any]]:
    """The guard's verdict on an LLM answer: the text and "ok", or None and the reason."""
    answer = text if isinstance(text, str) else ""
    t0 = time.perf_counter()
    verdict = check(answer, facts, spec.catalogue, language=spec.language)
    info = info | {"guard_s": time.perf_counter() - t0}
    if verdict.accepted:
        return answer, info | {"guard": "ok"}
    return None, info | {"guard": verdict.reason, "guard_detail": verdict.detail[:GUARD_DETAIL]}
