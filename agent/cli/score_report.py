"""`lineside score --report out.html`: one self-contained page of a replay (inline SVG and CSS).

What it shows: a summary table (alarms, their durations, and with an `anomaly` label column
the labelled faults found and missed and the false-alarm rate); the VAE score against its
threshold over time, each alarm of the line's fused decision shaded and labelled A1, A2...;
the shift score against its threshold when the bundle has one; per alarm the tags that
contributed most, each with its trace against its SPC limits, and the template explanation the
live agent would publish (agent.explain); and every SPC rule hit counted per tag and rule.
No script, no stylesheet or font from elsewhere: the file opens offline.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path

import numpy as np

from agent.bundles.bundle import Bundle
from agent.cli.svg_plot import PALETTE, Chart, Series, line_chart
from agent.config.catalogue import Catalogue
from agent.explain.facts import Snapshot, build_facts
from agent.explain.template import render
from agent.pipeline.replay import Replay, seconds
from agent.sinks.explainer import line_context
from agent.types import Event, EventKind, EventState

TOP_TAGS = 3
CONTEXT_ROWS = 60  # rows before an alarm shown in its traces and given to the explanation
QUIET = ("in-control", "no-data")
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1000px}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px}
th{background:#f3f3f3;text-align:left}.alarm{border-top:2px solid #d62728;margin-top:1.5em}
.explanation{background:#fff7e6;padding:.5em;border-left:3px solid #f90}
.chart-title{font-size:12px;font-weight:bold}
"""


@dataclass(frozen=True)
class Alarm:
    """One stretch of rows where the line's fused decision held."""

    label: str
    start: int  # first row index in alarm
    end: int  # first row index after it
    detectors: tuple[str, ...]
    top_tags: tuple[str, ...]
    explanation: str


def alarm_spans(active: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) row ranges where `active` holds.

    >>> alarm_spans(np.array([0, 1, 1, 0, 1], dtype=bool))
    [(1, 3), (4, 5)]
    """
    flags = np.concatenate([[False], np.asarray(active, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(flags.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _top_tags(replay: Replay, start: int, end: int) -> tuple[str, ...]:
    contrib = replay.contrib[start:end]
    if np.isfinite(contrib).any():
        mean = np.nanmean(np.where(np.isfinite(contrib), contrib, np.nan), axis=0)
        order = np.argsort(-np.nan_to_num(mean, nan=-1.0))
        return tuple(replay.channels[i] for i in order[:TOP_TAGS])
    broken = Counter(
        tag
        for states in replay.spc_states[start:end]
        for tag, s in states.items()
        if s not in QUIET
    )
    return tuple(tag for tag, _ in broken.most_common(TOP_TAGS))


def _explain(
    replay: Replay, bundle: Bundle, start: int, stamps: np.ndarray, catalogue: Catalogue
) -> str:
    assert replay.values is not None
    first = max(0, start - CONTEXT_ROWS)
    rules: dict[str, set[str]] = {}
    for states in replay.spc_states[first : start + 1]:
        for tag, state in states.items():
            if state not in QUIET:
                rules.setdefault(tag, set()).add(state)
    contrib = replay.contrib[start]
    score = float(replay.score[start])
    threshold = float(replay.threshold[start]) if replay.threshold is not None else math.nan
    event = Event(
        ts=float(stamps[start]),
        line="replay",
        kind=EventKind.ANOMALY,
        state=EventState.RAISED,
        detector="fused",
        severity=2,
        message="alarm",
        score=score if math.isfinite(score) else None,
        threshold=threshold if math.isfinite(threshold) else None,
    )
    snapshot = Snapshot(
        event=event,
        ts=stamps[first : start + 1],
        rows=replay.values[first : start + 1],
        contributions=tuple(float(c) for c in contrib) if np.isfinite(contrib).all() else None,
        rules={t: tuple(sorted(r)) for t, r in rules.items()},
    )
    return render(build_facts(snapshot, line_context(bundle, "replay"), catalogue))


def find_alarms(
    replay: Replay, bundle: Bundle, stamps: np.ndarray, catalogue: Catalogue | None = None
) -> list[Alarm]:
    """Every alarm of the fused decision with its detectors, top tags and explanation (citing
    the catalogue's likely causes when one is given)."""
    known = catalogue if catalogue is not None else Catalogue(modes=())
    flags = {"vae": replay.vae_alarm, "spc": replay.spc_alarm}
    if replay.shift_alarm is not None and replay.shift_alarm.any():
        flags["shift"] = replay.shift_alarm
    alarms = []
    for k, (start, end) in enumerate(alarm_spans(replay.anomaly)):
        detectors = tuple(name for name, f in flags.items() if f[start:end].any())
        alarms.append(
            Alarm(
                label=f"A{k + 1}",
                start=start,
                end=end,
                detectors=detectors,
                top_tags=_top_tags(replay, start, end),
                explanation=_explain(replay, bundle, start, stamps, known),
            )
        )
    return alarms


def summary_rows(
    replay: Replay, alarms: list[Alarm], x: np.ndarray, unit: str
) -> list[tuple[str, str]]:
    """(name, value) rows of the summary table."""
    durations = [float(x[min(a.end, len(x) - 1)] - x[a.start]) for a in alarms]
    rows: list[tuple[str, str]] = [
        ("rows", str(len(replay.lines))),
        ("alarms", str(len(alarms))),
        ("rows in alarm", f"{int(replay.anomaly.sum())} ({100 * replay.anomaly.mean():.1f} %)"),
    ]
    if durations:
        rows.append(("alarm duration: total", f"{sum(durations):.6g} {unit}"))
        rows.append(("alarm duration: median, longest",
                     f"{np.median(durations):.6g}, {max(durations):.6g} {unit}"))  # fmt: skip
    label = replay.labels.get("anomaly")
    if label is not None:
        fault = np.nan_to_num(label) > 0.5
        segments = alarm_spans(fault)
        found = [s for s in segments if replay.anomaly[s[0] : s[1]].any()]
        false = [a for a in alarms if not fault[a.start : a.end].any()]
        normal_rows = int((~fault).sum())
        rows.append(("labelled faults found", f"{len(found)} of {len(segments)}"))
        rate = f"{len(false)} of {len(alarms)}" + (
            f" ({100 * len(false) / len(alarms):.1f} %)" if alarms else ""
        )
        rows.append(("false alarms (no labelled fault row)", rate))
        fpr = int((replay.anomaly & ~fault).sum()) / normal_rows if normal_rows else math.nan
        rows.append(("normal rows in alarm", f"{100 * fpr:.2f} %"))
    return rows


def _table(head: list[str], rows: Sequence[tuple[object, ...]]) -> str:
    cells = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{cells}</tr>{body}</table>"


def _spc_hits(replay: Replay) -> list[tuple[str, str, int]]:
    hits = Counter(
        (tag, state) for states in replay.spc_states for tag, state in states.items()
        if state not in QUIET
    )  # fmt: skip
    return [(tag, rule, n) for (tag, rule), n in sorted(hits.items())]


def _tag_trace(
    replay: Replay, bundle: Bundle, alarm: Alarm, tag: str, x: np.ndarray, x_label: str
) -> str:
    assert replay.values is not None
    i = replay.channels.index(tag)
    first, last = max(0, alarm.start - CONTEXT_ROWS), min(len(x), alarm.end + CONTEXT_ROWS)
    spc = bundle.manifest.spc
    centre, sigma = float(spc.center[i]), float(spc.sigma[i])
    half = spc.nsigmas * sigma
    unit = bundle.manifest.channels[i].unit
    return line_chart(
        Chart(
            title=f"{tag} ({unit})" if unit else tag,
            x=x[first:last].tolist(),
            series=[Series(tag, replay.values[first:last, i].tolist(), PALETTE[0])],
            ref_lines=[
                ("UCL", centre + half, "#d62728"),
                ("CL", centre, "#2ca02c"),
                ("LCL", centre - half, "#d62728"),
            ],
            bands=[(alarm.label, float(x[alarm.start]), float(x[alarm.end - 1]))],
            x_label=x_label,
            height=160,
        )
    )


def _epoch(times: list[str]) -> float | None:
    """The first row's time as epoch seconds when every row's time parses, else None."""
    try:
        stamps = [datetime.fromisoformat(t) for t in times]
    except ValueError:
        return None
    return stamps[0].timestamp() if stamps else None


def write_report(
    replay: Replay, bundle: Bundle, source: Path, out: Path, catalogue: Catalogue | None = None
) -> list[Alarm]:
    """Write the HTML report of one replay to `out`; the alarms it shows."""
    start_epoch = _epoch(replay.times)
    is_time = start_epoch is not None
    x = seconds(replay.times) if is_time else np.arange(len(replay.lines), dtype=np.float64)
    unit = "s" if is_time else "rows"
    x_label = f"seconds since {replay.times[0]}" if is_time else "row (first data row = 0)"
    start_epoch = start_epoch or 0.0
    alarms = find_alarms(replay, bundle, x + start_epoch, catalogue)
    bands = [(a.label, float(x[a.start]), float(x[a.end - 1])) for a in alarms]
    threshold = replay.threshold if replay.threshold is not None else np.full(len(x), np.nan)
    finite = threshold[np.isfinite(threshold)]
    score_chart = Chart(
        title="VAE score against its threshold; the line's alarms shaded",
        x=x.tolist(),
        series=[Series("score", replay.score.tolist())],
        ref_lines=[("threshold", float(finite[0]), "#d62728")] if finite.size else [],
        bands=bands,
        x_label=x_label,
    )
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>lineside score: {escape(source.name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Replay of {escape(source.name)}</h1>",
        f"<p>bundle model version {escape(str(bundle.manifest.model_version))}, "
        f"fusion <code>{escape(str(bundle.manifest.fusion))}</code>, "
        f"{len(replay.channels)} tags, {len(replay.lines)} rows.</p>",
        "<h2>Summary</h2>",
        _table(["measure", "value"], summary_rows(replay, alarms, x, unit)),
        "<h2>Score</h2>",
        line_chart(score_chart),
    ]
    shift = replay.shift_score
    if shift is not None and np.isfinite(shift).any() and replay.shift_threshold is not None:
        limit = replay.shift_threshold[np.isfinite(replay.shift_threshold)]
        shift_chart = Chart(
            title="shift score against its threshold",
            x=x.tolist(),
            series=[Series("shift score", shift.tolist(), PALETTE[1])],
            ref_lines=[("threshold", float(limit[0]), "#d62728")],
            bands=bands,
            x_label=x_label,
        )
        parts.append(line_chart(shift_chart))
    parts.append(f"<h2>Alarms ({len(alarms)})</h2>")
    for a in alarms:
        span = f"{replay.times[a.start] or a.start} .. {replay.times[a.end - 1] or a.end - 1}"
        parts += [
            f"<section class='alarm' id='{a.label}'><h3>{a.label}: {escape(span)}</h3>",
            f"<p>rows {replay.lines[a.start]}..{replay.lines[a.end - 1]} of the file; "
            f"detectors: {escape(', '.join(a.detectors) or 'fused')}; "
            f"top tags: {escape(', '.join(a.top_tags) or '-')}</p>",
            f"<p class='explanation'>{escape(a.explanation)}</p>",
            *(_tag_trace(replay, bundle, a, tag, x, x_label) for tag in a.top_tags),
            "</section>",
        ]
    parts.append("<h2>SPC rule hits</h2>")
    hits = _spc_hits(replay)
    parts.append(_table(["tag", "rule", "rows"], hits) if hits else "<p>none</p>")
    parts.append("</body></html>")
    out.write_text("\n".join(parts), encoding="utf-8")
    return alarms
