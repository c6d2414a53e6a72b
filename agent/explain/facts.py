"""What happened, as data: the facts of one anomaly event. Pure and synchronous.

Everything an explanation may say comes from here: which tags moved, how and how far out of
their normal range, which SPC rules they broke, which usual correlations broke, which past
events looked alike (and how an operator resolved them), and which causes the site's
failure-mode catalogue offers for that pattern. The template renders these facts; the LLM
phrases them; the guard checks the LLM against them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from agent.config.catalogue import Candidate, Catalogue
from agent.core.forecast import Forecast
from agent.explain.directions import clean_move
from agent.explain.directions import direction as direction  # its home before the split
from agent.types import Event

FloatArray = npt.NDArray[np.float64]
MAX_TAGS = 4
STRONG_CORRELATION = 0.7  # reference correlations weaker than this cannot "break"
CORRELATION_DROP = 0.5  # ... and a break is a fall of at least this much
SIMILAR = 0.8  # cosine similarity of contribution patterns to call a past event similar


@dataclass(frozen=True)
class LineContext:
    """What the bundle says is normal for a line: channels, units, SPC limits, correlation."""

    line: str
    channels: tuple[str, ...]
    units: tuple[str, ...]
    center: FloatArray
    sigma: FloatArray
    mr_bar: FloatArray
    nsigmas: float = 3.0
    correlation: FloatArray | None = None  # reference correlation of the training data


@dataclass(frozen=True)
class Snapshot:
    """What the detection loop hands over at an event: recent rows, contributions, rules."""

    event: Event
    ts: FloatArray  # (n,) timestamps of the rows, oldest first
    rows: FloatArray  # (n, channels) raw engineering values, oldest first
    contributions: tuple[float, ...] | None
    rules: dict[str, tuple[str, ...]] = field(default_factory=dict)  # tag -> SPC rules seen
    #: The line's fused tag attribution (a share per channel), when the pipeline has one.
    attribution: tuple[float, ...] | None = None
    forecasts: dict[str, Forecast] = field(default_factory=dict)  # tag -> its drift forecast


@dataclass(frozen=True)
class PastEvent:
    """An earlier anomaly from the journal: its contribution pattern and the operator's note."""

    event_id: str
    ts: float
    contributions: dict[str, float]
    note: str = ""


@dataclass(frozen=True)
class TagFact:
    """One tag of the event: its value, normal range, direction, contribution and rules."""

    tag: str
    unit: str
    value: float
    low: float
    high: float
    direction: str
    contribution: float | None
    rules: tuple[str, ...]
    #: When a drifting tag reaches its next limit at the current rate (agent.core.forecast).
    forecast: Forecast | None = None

    @property
    def outside(self) -> str:
        """`above`, `below` or `within` the normal range."""
        if self.value > self.high:
            return "above"
        return "below" if self.value < self.low else "within"


@dataclass(frozen=True)
class CorrelationBreak:
    """Two tags that usually move together and no longer do."""

    tag: str
    other: str
    reference: float
    recent: float


@dataclass(frozen=True)
class SimilarEvent:
    """A past event with a similar contribution pattern."""

    event_id: str
    ts: float
    similarity: float
    note: str


@dataclass(frozen=True)
class Facts:
    """The facts of one event: the only material an explanation may use."""

    event_id: str
    line: str
    kind: str
    start: float
    duration_s: float
    score: float | None
    threshold: float | None
    tags: tuple[TagFact, ...]
    breaks: tuple[CorrelationBreak, ...]
    similar: tuple[SimilarEvent, ...]
    causes: tuple[Candidate, ...]
    line_tags: tuple[str, ...] = ()

    @property
    def tag_names(self) -> set[str]:
        """Every tag the facts speak about."""
        return (
            {t.tag for t in self.tags}
            | {b.other for b in self.breaks}
            | {b.tag for b in self.breaks}
        )

    def numbers(self) -> list[float]:
        """Every number an explanation may cite."""
        found = [self.duration_s]
        found += [v for v in (self.score, self.threshold) if v is not None]
        for t in self.tags:
            found += [t.value, t.low, t.high]
            if t.contribution is not None:
                found.append(t.contribution)
            if t.forecast is not None:
                found += forecast_numbers(t.forecast)
        for b in self.breaks:
            found += [b.reference, b.recent]
        found += [s.similarity for s in self.similar]
        return found


def forecast_numbers(f: Forecast) -> list[float]:
    """The numbers of a forecast an explanation may cite: the limit, the time and its interval
    in seconds and in minutes (an open interval's end is left out)."""
    seconds = [v for v in (f.seconds, f.low_s, f.high_s) if math.isfinite(v)]
    return [f.limit.value, *seconds, *(v / 60.0 for v in seconds)]


def fmt_minutes(minutes: float) -> str:
    """Minutes as an explanation says them: whole from 10 up, else one decimal.

    Examples
    --------
    >>> fmt_minutes(12.34), fmt_minutes(3.26), fmt_minutes(0.42)
    ('12', '3.3', '0.4')
    """
    return f"{minutes:.0f}" if minutes >= 10 else f"{minutes:.1f}"


def fmt(value: float) -> str:
    """A number as explanations print it: 3 significant digits, at least 1 decimal below 1000.

    Examples
    --------
    >>> fmt(212.437), fmt(0.04321), fmt(1234.5)
    ('212.4', '0.0432', '1234')
    """
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}"
    return f"{value:.3g}"


def clock(ts: float) -> str:
    """A timestamp as an operator reads it: local wall-clock time, seconds resolution."""
    return time.strftime("%H:%M:%S", time.localtime(ts))


def correlation_breaks(
    rows: FloatArray, ctx: LineContext, focus: list[int]
) -> list[CorrelationBreak]:
    """Pairs with a focus tag that correlated strongly in training and do not in `rows`.

    Two tests must both fail: the recent correlation fell far from the reference, and the
    focus tag's recent level is more than 3 residual sigmas away from what the other tag
    predicts through the training regression. The second keeps quiet windows, where slow
    shared drivers do not move and any correlation is noise, from reporting breaks."""
    assert ctx.correlation is not None
    found = []
    std = rows.std(axis=0)
    tail = rows[-8:].mean(axis=0) - ctx.center
    for i in focus:
        for j in range(len(ctx.channels)):
            ref = float(ctx.correlation[i, j])
            if i == j or abs(ref) < STRONG_CORRELATION or std[i] == 0 or std[j] == 0:
                continue
            recent = float(np.corrcoef(rows[:, i], rows[:, j])[0, 1])
            predicted = ref * ctx.sigma[i] / ctx.sigma[j] * tail[j]
            spread = ctx.sigma[i] * math.sqrt(max(1.0 - ref * ref, 1e-6))
            if abs(ref - recent) >= CORRELATION_DROP and abs(tail[i] - predicted) > 3 * spread:
                found.append(CorrelationBreak(ctx.channels[i], ctx.channels[j], ref, recent))
    return found


def similar_events(
    contributions: dict[str, float], past: list[PastEvent], limit: int = 2
) -> list[SimilarEvent]:
    """Past events whose contribution pattern is nearest (cosine similarity >= SIMILAR)."""
    names = sorted(set(contributions).union(*(p.contributions for p in past)))
    now = np.array([contributions.get(n, 0.0) for n in names])
    found = []
    for p in past:
        then = np.array([p.contributions.get(n, 0.0) for n in names])
        denom = float(np.linalg.norm(now) * np.linalg.norm(then))
        similarity = float(now @ then) / denom if denom > 0 else 0.0
        if similarity >= SIMILAR:
            found.append(SimilarEvent(p.event_id, p.ts, round(similarity, 2), p.note))
    found.sort(key=lambda s: (-s.similarity, -s.ts))
    return found[:limit]


def _weights(ctx: LineContext, evidence: Sequence[float] | None) -> dict[str, float] | None:
    """Each tag's weight for the cause ranking: its share of the evidence over the top share."""
    if evidence is None or max(evidence, default=0.0) <= 0:
        return None
    top = max(evidence)
    return {c: max(float(v), 0.0) / top for c, v in zip(ctx.channels, evidence, strict=True)}


def build_facts(
    snap: Snapshot,
    ctx: LineContext,
    catalogue: Catalogue,
    past: Sequence[PastEvent] = (),
) -> Facts:
    """The facts of one event from what the loop saw, the bundle's normal and the catalogue."""
    event, rows = snap.event, snap.rows
    n_ch = len(ctx.channels)
    contrib = snap.contributions
    # The line's fused attribution ranks the tags when it has evidence, else the VAE's error.
    evidence = (
        snap.attribution if snap.attribution is not None and any(snap.attribution) else contrib
    )
    ranked = list(range(n_ch))
    if evidence is not None:
        ranked.sort(key=lambda i: -evidence[i])
    with_rules = [i for i in range(n_ch) if snap.rules.get(ctx.channels[i])]
    focus = ranked[:3] if evidence is not None else []
    if event.tag in ctx.channels and ctx.channels.index(event.tag) not in focus:
        focus.insert(0, ctx.channels.index(event.tag))
    focus += [i for i in with_rules if i not in focus]
    focus = focus[:MAX_TAGS]

    directions: dict[str, str] = {}
    onsets: list[int] = []
    tags = []
    for i in focus:
        name = ctx.channels[i]
        d, onset = direction(
            rows[:, i], float(ctx.center[i]), float(ctx.sigma[i]), float(ctx.mr_bar[i])
        )
        directions[name] = d
        if d != "steady":
            onsets.append(onset)
        half = ctx.nsigmas * float(ctx.sigma[i])
        tags.append(
            TagFact(
                tag=name,
                unit=ctx.units[i],
                value=float(rows[-1, i]),
                low=float(ctx.center[i]) - half,
                high=float(ctx.center[i]) + half,
                direction=d,
                contribution=None if contrib is None else round(float(contrib[i]), 2),
                rules=snap.rules.get(name, ()),
                forecast=snap.forecasts.get(name) if d.startswith("drift") else None,
            )
        )
    breaks = []
    if ctx.correlation is not None and rows.shape[0] >= 8:
        breaks = correlation_breaks(rows, ctx, focus[:3])
    decoupled = frozenset(b.tag for b in breaks)
    doubtful: frozenset[str] = frozenset()
    for tag in decoupled & {t for t, d in directions.items() if d != "steady"}:
        # A tag that broke with its neighbours and also moved: a stuck, noisy or spiking tag
        # is its own fault (the neighbours did not follow it); a clean step or ramp most
        # likely too (an offset), but a signal switched to another process jumps as cleanly,
        # so its decoupling stays, doubtful; a wander that fits neither is the tag following
        # another process.
        i = ctx.channels.index(tag)
        decoupled = decoupled - {tag}
        if directions[tag] in ("stuck", "noisy", "spikes"):
            continue
        if clean_move(rows[:, i], float(ctx.mr_bar[i])):
            doubtful = doubtful | {tag}
        else:
            directions[tag] = "steady"
            decoupled = decoupled | {tag}
    # The onset is where the most unusual tag changed; drifts and old steps start at row 0.
    start = float(snap.ts[onsets[0]]) if onsets and snap.ts.size else event.ts
    start = min(start, event.ts)
    pattern = {} if contrib is None else dict(zip(ctx.channels, contrib, strict=True))
    return Facts(
        event_id=event.event_id,
        line=event.line,
        kind=event.kind.value,
        start=start,
        duration_s=round(event.ts - start, 1),
        score=event.score,
        threshold=event.threshold,
        tags=tuple(tags),
        breaks=tuple(breaks),
        similar=tuple(similar_events(pattern, list(past))) if pattern else (),
        causes=tuple(
            catalogue.match(
                directions, decoupled, weights=_weights(ctx, evidence), doubtful=doubtful
            )
        ),
        line_tags=ctx.channels,
    )
