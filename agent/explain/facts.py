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
from agent.types import Event

FloatArray = npt.NDArray[np.float64]
D2 = 1.128  # d2 of moving ranges of span 2: short-term sigma = MR-bar / d2
D4 = 3.267  # D4 of moving ranges of span 2: the MR chart's UCL is D4 x MR-bar
MAX_TAGS = 4
NOISY_RATIO = 2.5  # typical moving range this many times its normal size: noisy
STUCK_SAMPLES = 8  # the same reading this many times in a row: stuck
NOISY_SAMPLES = 12  # noise is judged on the last moving ranges, not the whole window
STRONG_CORRELATION = 0.7  # reference correlations weaker than this cannot "break"
CORRELATION_DROP = 0.5  # ... and a break is a fall of at least this much
CLEAN_NOISE = 2.0  # a step or ramp fitting to this many noise sigmas is the tag's own move
SMOOTH = 0.3  # changes this correlated from one to the next are a swing, not noise
SPIKE_SIGMAS = 5.0  # a reading this far from its neighbours' median is a spike
SPIKE_SAMPLES = 32  # spikes are looked for in the last this many readings
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


def _rough(x: FloatArray) -> bool:
    """Whether the recent changes alternate as noise does (white noise: lag-1 correlation of
    its differences -0.5), not a smooth swing whose every step goes the same way."""
    d = np.diff(x[-NOISY_SAMPLES - 1 :])
    if d.shape[0] < 4 or float(np.std(d[:-1])) == 0.0 or float(np.std(d[1:])) == 0.0:
        return True
    return float(np.corrcoef(d[:-1], d[1:])[0, 1]) < SMOOTH


def _spiky(x: FloatArray, mr_bar: float) -> bool:
    """Isolated readings far off their neighbours while the rest is as calm as normal: each
    reading against the median of it and its two neighbours, SPIKE_SIGMAS short-term sigmas."""
    if mr_bar <= 0 or x.shape[0] < 5:
        return False
    tail = x[-SPIKE_SAMPLES - 2 :]
    med = np.median(np.stack([tail[:-2], tail[1:-1], tail[2:]]), axis=0)
    off = np.abs(tail[1:-1] - med) / (mr_bar / D2)
    spikes = off > SPIKE_SIGMAS
    count = int(spikes.sum())
    if not 0 < count <= spikes.shape[0] // 2:
        return False
    at = np.nonzero(spikes)[0]
    if spikes.shape[0] - int(at[0]) < 2 or (count > 1 and float(np.median(np.diff(at))) < 3):
        return False  # far readings just now or side by side: noise that has only begun
    # Noise that grew is off everywhere since it began, spikes only where they are.
    since = off[int(np.argmax(spikes)) :]
    rest = since[since <= SPIKE_SIGMAS]
    return rest.size == 0 or float(np.mean(rest > 3.0)) < 0.25


def _sse(x: FloatArray) -> float:
    return float(np.sum((x - x.mean()) ** 2))


def direction(x: FloatArray, center: float, sigma: float, mr_bar: float) -> tuple[str, int]:
    """How a tag moved in a recent window, and where the change began (row index).

    Stuck (the same reading at the end), noisy (recent moving ranges far above normal), a step
    (two levels fit better than flat-then-ramp) or a drift (the ramp fits better), up or down;
    steady when neither explains the window and the end is inside the normal band.

    Examples
    --------
    >>> x = np.r_[np.zeros(16), np.full(16, 5.0)] + 0.1 * np.sin(np.arange(32.0))
    >>> direction(x, center=0.0, sigma=1.0, mr_bar=0.1)
    ('step-up', 16)
    >>> direction(np.linspace(0.0, -6.0, 32), center=0.0, sigma=1.0, mr_bar=0.1)[0]
    'drift-down'
    """
    n = x.shape[0]
    if n < 4 or not np.all(np.isfinite(x)):
        return "steady", 0
    tail = x[-min(STUCK_SAMPLES, n) :]
    if n >= STUCK_SAMPLES and np.ptp(tail) == 0.0:
        moved = np.nonzero(np.diff(x) != 0.0)[0]
        return "stuck", int(moved[-1] + 1) if moved.size else 0
    recent = np.abs(np.diff(x[-NOISY_SAMPLES - 1 :]))
    # For white noise the median moving range is 0.846 x MR-bar (half-normal median / mean).
    # Noise that only just began shows as several moving ranges above the MR chart's UCL,
    # where a step makes one; isolated spikes leave the median moving range alone.
    if mr_bar > 0 and float(np.median(recent)) > NOISY_RATIO * 0.846 * mr_bar and _rough(x):
        return "noisy", max(0, n - NOISY_SAMPLES - 1)
    if _spiky(x, mr_bar):
        return "spikes", max(0, n - NOISY_SAMPLES - 1)
    if mr_bar > 0 and int(np.sum(recent[-6:] > D4 * mr_bar)) >= 3 and _rough(x):
        return "noisy", max(0, n - NOISY_SAMPLES - 1)
    total = _sse(x)
    step_sse, k = min((_sse(x[:j]) + _sse(x[j:]), j) for j in range(2, n - 1))
    ramp_sse, onset, slope = _best_ramp(x)
    noise = max(mr_bar / D2, 1e-12)
    shift = float(x[k:].mean() - x[:k].mean())
    explained = total > 0 and min(step_sse, ramp_sse) < 0.5 * total
    z_end = (float(x[-4:].mean()) - center) / max(sigma, 1e-12)
    if explained and step_sse <= ramp_sse and abs(shift) >= 3 * noise:
        return ("step-up" if shift > 0 else "step-down"), k
    if explained and abs(slope) * (n - onset) >= 3 * noise:
        return ("drift-up" if slope > 0 else "drift-down"), onset
    if abs(z_end) >= 3:  # out of range and level within the window: an older step
        return ("step-up" if z_end > 0 else "step-down"), 0
    return "steady", 0


def clean_move(x: FloatArray, mr_bar: float) -> bool:
    """Whether two levels or a hinged ramp fit the window to within CLEAN_NOISE short-term
    sigmas: what a sensor step or drift leaves. A tag following another process wanders, and
    fits neither as well."""
    n = x.shape[0]
    if n < 4 or mr_bar <= 0 or not np.all(np.isfinite(x)):
        return False
    step_sse = min(_sse(x[:j]) + _sse(x[j:]) for j in range(2, n - 1))
    residual = math.sqrt(min(step_sse, _best_ramp(x)[0]) / (n - 2))
    return residual <= CLEAN_NOISE * mr_bar / D2


def _best_ramp(x: FloatArray) -> tuple[float, int, float]:
    """Best fit of 'flat, then a straight ramp from row k' (k = 0: a line): SSE, k, slope.

    A step stays flat after it changes and a drift keeps going, so a two-level fit against
    this hinge tells them apart even when the drift began inside the window."""
    n = x.shape[0]
    t = np.arange(n, dtype=np.float64)
    best = (math.inf, 0, 0.0)
    for k in range(0, n - 3):
        design = np.column_stack([np.ones(n), np.maximum(0.0, t - k)])
        coef, *_ = np.linalg.lstsq(design, x, rcond=None)
        sse = float(np.sum((x - design @ coef) ** 2))
        if sse < best[0]:
            best = (sse, k, float(coef[1]))
    return best


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
