"""Fit the drift-tolerant shift detector (agent.pipeline.detectors.shift) on normal rows only.

Per input table, its rows in time order are one stream: the first 70 % (the VAE's training
part) give each channel's scale, the rest (the VAE's validation + calibration parts, never
used for the scale) give the threshold, as the VAE's threshold comes from held-out windows.

- scale_c: the larger of 1.4826 x MAD and the standard deviation of f_c - b_c (fast EWMA
  minus baseline) on the training part, after a warm-up of min(100, a third) of its rows.
  Here both levels start at the stream's first row with their own weights (no running-mean
  warm-up, unlike the live detector), so the slow baseline's start-up transient stays in
  f - b and widens the scale of a channel whose first reading was off its mean. That is the
  fit the defaults were chosen with on SKAB; the running-mean fit gave a tighter scale that
  lost there (valve2 + other: F1 0.838 at margin 1.5 against 0.868; FAR 17.6 % at 1.25);
- threshold: quantile `quantile` (default 1.0, the largest) of the score on the held-out
  rows x `margin` (1.25, as the VAE's); the baseline adapts throughout (no alarm in fitting).

Channels named in `exclude` (the export's `--relative` channels, which drift in normal
operation) and channels whose f - b never moved in training are not watched. The defaults
(fast 0.2, slow 0.005, margin 1.25) were chosen on SKAB's valve2 + other folders only
(benchmarks/skab.py); valve1 is held out.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from agent.bundles.manifest import SHIFT_FUSIONS, ShiftParams
from export.data import TRAIN_FRACTION

FloatArray = npt.NDArray[np.float64]

FAST = 0.2
SLOW = 0.005
QUANTILE = 1.0
MARGIN = 1.25
MAX_FREEZE = 3600
WARMUP = 100


def _drift(stream: FloatArray, fast: float, slow: float) -> FloatArray:
    """f - b on every row of a stream, both levels started at its first row, always adapting."""
    f = stream[0].copy()
    b = stream[0].copy()
    out = np.empty_like(stream)
    for i, x in enumerate(stream):
        f += fast * (x - f)
        b += slow * (x - b)
        out[i] = f - b
    return out


def fit_shift(
    streams: list[FloatArray],
    columns: list[str],
    exclude: list[str] | None = None,
    fast: float = FAST,
    slow: float = SLOW,
    quantile: float = QUANTILE,
    margin: float = MARGIN,
    max_freeze: int = MAX_FREEZE,
    budget: tuple[float, float] | None = None,
) -> tuple[ShiftParams | None, dict[str, object]]:
    """The fitted parameters (None when no channel can be watched) and a record of the fit.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> rows = rng.normal(size=(400, 3)); rows[:, 2] = 7.0
    >>> params, record = fit_shift([rows], ["a", "b", "c"], exclude=["b"])
    >>> params.watched, record["not_watched"]
    ((0,), {'b': 'excluded (drifts in normal operation)', 'c': 'constant in training'})
    """
    if not streams:
        raise ValueError("no rows to fit the shift detector on")
    for s in streams:
        if s.ndim != 2 or s.shape[1] != len(columns) or not np.isfinite(s).all():
            raise ValueError("shift fit needs finite rows x channels streams")
    drop = set(exclude or [])
    fit_parts, held_parts = [], []
    for s in streams:
        end = round(s.shape[0] * TRAIN_FRACTION)
        if end < 3 or s.shape[0] - end < 1:
            continue
        d = _drift(s, fast, slow)
        fit_parts.append(d[min(WARMUP, end // 3) : end])
        held_parts.append(d[end:])
    if not fit_parts:
        raise ValueError("too few rows to fit the shift detector (need a held-out part)")
    fit = np.concatenate(fit_parts)
    mad = 1.4826 * np.median(np.abs(fit - np.median(fit, axis=0)), axis=0)
    scale = np.maximum(mad, fit.std(axis=0))
    not_watched: dict[str, str] = {}
    watched = []
    for i, c in enumerate(columns):
        if c in drop:
            not_watched[c] = "excluded (drifts in normal operation)"
        elif not scale[i] > 1e-12 * max(1.0, float(np.abs(fit[:, i]).max())):
            not_watched[c] = "constant in training"
        else:
            watched.append(i)
    record: dict[str, object] = {"not_watched": not_watched}
    if not watched:
        return None, record
    idx = np.array(watched)
    held = np.concatenate(held_parts)[:, idx]
    score = np.max(np.abs(held) / scale[idx], axis=1)
    if budget is None:
        threshold = float(np.quantile(score, quantile)) * margin
        rule = f"quantile {quantile:g} of {score.size} held-out normal rows x {margin:g}"
    else:
        from export.budget import budget_threshold  # the VAE's rule (export/budget.py)

        found = budget_threshold(score, *budget)
        threshold = found.threshold
        rule = found.describe(budget[0], budget[1], "rows")
    method = f"{rule}; scale from {fit.shape[0]} training rows"
    params = ShiftParams(
        channels=len(columns),
        watched=tuple(watched),
        fast=fast,
        slow=slow,
        scale=tuple(float(v) for v in scale[idx]),
        threshold=max(threshold, 1e-9),
        max_freeze=max_freeze,
        method=method,
    )
    record["held_out_rows"] = int(score.size)
    return params, record


def shift_for_bundle(
    segments: list[list[FloatArray]],
    columns: list[str],
    exclude: list[str],
    fusion: str,
    margin: float | None = MARGIN,
    budget: tuple[float, float] | None = None,
) -> tuple[ShiftParams, dict[str, object]] | None:
    """The manifest's shift detector and the record of its fit (None if no channel can be
    watched); ExportError when the chosen fusion needs it and there is none. With `budget`
    (false alarms per hour, seconds per row) the threshold meets it instead of the margin."""
    from export.errors import ExportError

    streams = [np.concatenate(s) for s in segments if s]
    try:
        params, record = fit_shift(
            streams, columns, exclude, margin=margin or MARGIN, budget=budget
        )
    except ValueError as exc:
        if fusion in SHIFT_FUSIONS:
            raise ExportError(f"--fusion {fusion}: {exc}") from None
        return None
    if params is None:
        if fusion in SHIFT_FUSIONS:
            raise ExportError(
                f"--fusion {fusion}: no channel for the shift detector ({record['not_watched']})"
            )
        return None
    return params, record
