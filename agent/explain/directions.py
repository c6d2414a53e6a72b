"""How one tag moved in a recent window: stuck, noisy, spikes, a step or a drift. Pure.

`direction` classifies a tag's recent readings for the facts of an event
(agent.explain.facts) against its normal centre, sigma and moving range; `clean_move` says
whether a step or ramp fits the window as tightly as a sensor offset leaves it (a tag that
follows another process wanders instead).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
D2 = 1.128  # d2 of moving ranges of span 2: short-term sigma = MR-bar / d2
D4 = 3.267  # D4 of moving ranges of span 2: the MR chart's UCL is D4 x MR-bar
NOISY_RATIO = 2.5  # typical moving range this many times its normal size: noisy
STUCK_SAMPLES = 8  # the same reading this many times in a row: stuck
NOISY_SAMPLES = 12  # noise is judged on the last moving ranges, not the whole window
CLEAN_NOISE = 2.0  # a step or ramp fitting to this many noise sigmas is the tag's own move
SMOOTH = 0.3  # changes this correlated from one to the next are a swing, not noise
SPIKE_SIGMAS = 5.0  # a reading this far from its neighbours' median is a spike
SPIKE_SAMPLES = 32  # spikes are looked for in the last this many readings


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
