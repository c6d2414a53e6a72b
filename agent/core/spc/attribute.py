"""Attribute charts for counted defects: p, np (defectives), c, u (defects), per channel.

Lines count good parts and rejects; these charts take those counts directly.

- p: fraction defective d/n; centre p-bar = sum d / sum n; sigma sqrt(p-bar (1 - p-bar) / n).
- np: number defective d; centre n p-bar; sigma sqrt(n p-bar (1 - p-bar)); n constant.
- c: defects per inspection unit; centre c-bar; sigma sqrt(c-bar).
- u: defects per unit c/n; centre u-bar = sum c / sum n; sigma sqrt(u-bar / n).

The sample size n may vary from point to point for p and u (and is then given with every
update): the limits are per point, centre +/- L sigma(n). A lower limit below 0 is clipped to
0 (and the upper limit of p to 1), which is why rule 1 uses `beyond`, not |z| > 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.core.spc.base import ChartPoint, FloatArray, check_state
from agent.core.spc.phase1 import Phase1Report, iterate

ATTRIBUTE_CHARTS = ("p", "np", "c", "u")
SIZED = frozenset({"p", "np", "u"})


@dataclass(frozen=True)
class AttributeLimits:
    """The centre of an attribute chart per channel (p-bar, c-bar or u-bar) and L."""

    kind: str
    center: FloatArray  # p-bar for p and np, c-bar for c, u-bar for u
    nsigmas: float = 3.0
    report: Phase1Report | None = None

    def point(self, counts: FloatArray, sizes: FloatArray | None) -> ChartPoint:
        """The plotted point of one sample: counts (and sizes) per channel."""
        ones = np.ones_like(counts)
        n = ones if sizes is None else np.broadcast_to(sizes, counts.shape).astype(np.float64)
        bar = self.center
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.kind == "p":
                stat, center, sigma = counts / n, bar * ones, np.sqrt(bar * (1 - bar) / n)
            elif self.kind == "np":
                stat, center, sigma = counts, n * bar, np.sqrt(n * bar * (1 - bar))
            elif self.kind == "c":
                stat, center, sigma = counts, bar * ones, np.sqrt(bar) * ones
            else:
                stat, center, sigma = counts / n, bar * ones, np.sqrt(bar / n)
        lcl = np.maximum(center - self.nsigmas * sigma, 0.0)
        ucl = center + self.nsigmas * sigma
        if self.kind == "p":
            ucl = np.minimum(ucl, 1.0)
        elif self.kind == "np":
            ucl = np.minimum(ucl, n)
        return ChartPoint(stat, center, lcl, ucl, sigma)


def check_counts(kind: str, counts: FloatArray, sizes: FloatArray | None) -> None:
    """ValueError naming the first impossible count or size."""
    if kind not in ATTRIBUTE_CHARTS:
        raise ValueError(f"attribute chart must be one of {ATTRIBUTE_CHARTS}, got {kind!r}")
    if np.isnan(counts).any() or (counts < 0).any():
        i = int(np.flatnonzero(np.isnan(counts) | (counts < 0))[0])
        raise ValueError(f"count {i} is {counts.flat[i]}: counts must be >= 0")
    if kind in SIZED:
        if sizes is None:
            raise ValueError(f"a {kind} chart needs the sample size of every point")
        bad = np.isnan(sizes) | (sizes <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"sample size {i} is {sizes.flat[i]}: sizes must be > 0")
        if kind in ("p", "np") and (counts > sizes).any():
            i = int(np.flatnonzero(counts > sizes)[0])
            raise ValueError(
                f"point {i}: {counts.flat[i]} defectives in a sample of {sizes.flat[i]}"
            )
        if kind == "np" and (sizes != sizes[:1]).any():
            raise ValueError("an np chart needs one constant sample size; use a p chart")


def fit_attribute(
    kind: str,
    counts: FloatArray,
    sizes: FloatArray | None = None,
    nsigmas: float = 3.0,
    rounds: int = 0,
) -> AttributeLimits:
    """Phase I of a p, np, c or u chart from counts (points, channels) and sizes.

    Examples
    --------
    >>> limits = fit_attribute("p", np.array([[2.0], [4.0], [3.0]]), np.array([[50.0]] * 3))
    >>> float(limits.center[0])
    0.06
    """
    counts = np.asarray(counts, dtype=np.float64)
    counts = counts[:, None] if counts.ndim == 1 else counts
    if sizes is not None:
        sized = np.asarray(sizes, dtype=np.float64).reshape(counts.shape[0], -1)
        sizes = np.broadcast_to(sized, counts.shape)
    check_counts(kind, counts, sizes)
    if counts.shape[0] < 2:
        raise ValueError(f"an attribute chart needs at least 2 points, got {counts.shape[0]}")
    n = np.ones_like(counts) if sizes is None or kind == "c" else sizes

    def fit(kept: np.ndarray) -> AttributeLimits:
        total = np.sum(np.where(kept, counts, 0.0), axis=0)
        return AttributeLimits(kind, total / np.sum(np.where(kept, n, 0.0), axis=0), nsigmas)

    def beyond(limits: AttributeLimits) -> np.ndarray:
        return np.asarray(limits.point(counts, n).beyond)

    limits, report = iterate(fit, beyond, counts.shape, rounds)
    return AttributeLimits(kind, limits.center, nsigmas, report)


class AttributeChart:
    """Streaming p/np/c/u chart: one count (and sample size) per channel per update.

    Examples
    --------
    >>> chart = AttributeChart(AttributeLimits("c", np.array([4.0])))
    >>> p = chart.update(np.array([11.0]))
    >>> float(p.ucl[0]), bool(p.beyond[0])
    (10.0, True)
    """

    plot_names = ("statistic",)

    def __init__(self, limits: AttributeLimits, size: float | None = None) -> None:
        self.limits = limits
        self.size = size  # the constant sample size, when updates do not give one
        self.plot_names = (limits.kind,)
        self.channels = limits.center.shape[0]
        self._default: FloatArray | None = None  # sizes when an update gives none
        if size is not None:
            self._default = np.full(self.channels, float(size))
        self._cached: ChartPoint | None = None  # the limits of the last sizes
        self._cached_sizes: FloatArray | None = None

    def update(self, counts: FloatArray, sizes: FloatArray | None = None) -> ChartPoint:
        """Chart one sample per channel (a NaN count is a gap)."""
        kind = self.limits.kind
        cached = self._cached
        if kind == "c":
            if cached is None:
                cached = self._cached = self.limits.point(counts, None)
            return ChartPoint(counts.astype(np.float64), cached.center, cached.lcl,
                              cached.ucl, cached.sigma)  # fmt: skip
        n = self._default if sizes is None else sizes
        if n is None:
            raise ValueError(f"a {kind} chart needs the sample size of every point")
        # Lines mostly inspect the same number of parts every time: the limits of the last
        # sizes are reused, and only the plotted statistic is computed.
        known = self._cached_sizes
        if cached is None or known is None or not np.array_equal(n, known):
            cached = self._cached = self.limits.point(counts, n)
            self._cached_sizes = np.array(n, dtype=np.float64)
        stat = counts / n if kind in ("p", "u") else counts.astype(np.float64)
        return ChartPoint(stat, cached.center, cached.lcl, cached.ucl, cached.sigma)

    def reset(self) -> None:
        """Nothing to forget: every point stands alone."""

    def state(self) -> dict[str, object]:
        """No running state; the kind and channel count, for a consistent restore."""
        return {"chart": self.limits.kind, "channels": self.channels}

    def restore(self, state: dict[str, object]) -> None:
        """Check a saved `state()` belongs to this chart."""
        check_state(state, self.limits.kind, {"channels": self.channels})
