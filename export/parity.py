"""Scoring with onnxruntime, the calibrated threshold, fp32 vs int8 parity (the gate on what
matters: decisions), and the choice between dynamic and static int8 by that parity.

Both models run on the held-out normal windows and on probes made from them (`probe_windows`:
each with a step on one channel, so that some windows score near and above the threshold,
where a difference between the models would change an alarm). Parity passes when at most
`MAX_FLIP_FRACTION` of those windows change their decision (score > threshold) between fp32
and int8 and, on the windows whose fp32 score is within `NEAR` of the threshold, at most one
in 20 int8 scores (the 95th percentile) is off by more than `MAX_NEAR_THRESHOLD_DIFF` x the
threshold: a systematic divergence there, not one odd window, is what moves alarms. The score
correlation is reported, not gated: a model whose normal scores are all far below the
threshold can correlate at 0.98 and never change an alarm. The figures are written to
`parity.json` either way; the export ships fp32 alone when int8 fails (export/pipeline.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from export.defaults import MAX_FLIP_FRACTION, MAX_NEAR_THRESHOLD_DIFF
from export.errors import ExportError
from export.quantize import quantize_int8

Float32Array = npt.NDArray[np.float32]
FloatArray = npt.NDArray[np.float64]

#: Reported beside the gate (parity.json `pearson`), no longer a condition of it.
MIN_PEARSON = 0.99
#: "Near the threshold": fp32 score between (1 - NEAR) and (1 + NEAR) x the threshold.
NEAR = 0.5
#: The quantile of the near-threshold differences the gate bounds (one window in 20 may be off).
NEAR_QUANTILE = 0.95
#: Probe steps, in scaled units (robust sd of training), added to the second half of a window.
PROBE_STEPS = (1.0, 2.0, 4.0, 8.0)
#: At most this many held-out windows are used to make probes (spread over the held-out part).
PROBE_BASES = 32
_BATCH = 4096


def open_session(path: Path) -> ort.InferenceSession:
    """A CPU onnxruntime session on a model file, one thread (the models are tiny)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def score_onnx(path: Path, windows: Float32Array) -> tuple[Float32Array, Float32Array]:
    """`score` (n,) and `contrib` (n, channels) of an ONNX model over scaled windows."""
    session = open_session(path)
    scores: list[Float32Array] = []
    contribs: list[Float32Array] = []
    for start in range(0, windows.shape[0], _BATCH):
        batch = np.ascontiguousarray(windows[start : start + _BATCH], dtype=np.float32)
        score, contrib = session.run(["score", "contrib"], {"x": batch})
        scores.append(np.asarray(score, dtype=np.float32))
        contribs.append(np.asarray(contrib, dtype=np.float32))
    channels = windows.shape[2]
    if not scores:
        return np.empty(0, np.float32), np.empty((0, channels), np.float32)
    return np.concatenate(scores), np.concatenate(contribs)


def calibrate_threshold(scores: Float32Array, quantile: float, margin: float) -> float:
    """quantile(scores, q) * margin; raise ExportError if it is not a positive number."""
    if scores.size == 0:
        raise ExportError("no calibration windows: the calibration part is shorter than a window")
    threshold = float(np.quantile(scores.astype(np.float64), quantile)) * margin
    if not np.isfinite(threshold) or threshold <= 0:
        raise ExportError(
            f"calibrated threshold {threshold!r} is not a positive number; "
            "are the calibration rows constant?"
        )
    return threshold


@dataclass(frozen=True)
class Parity:
    """How closely the int8 model follows the fp32 model on the calibration windows."""

    windows: int
    threshold: float
    pearson: float
    max_abs_diff: float
    max_rel_diff: float
    mean_abs_diff: float
    decision_flips: int
    decision_flip_fraction: float
    min_pearson: float
    max_flip_fraction: float
    passed: bool
    near_threshold_windows: int = 0
    near_threshold_max_diff: float = 0.0  # as a share of the threshold
    near_threshold_p95_diff: float = 0.0  # the gate's figure, as a share of the threshold
    max_near_threshold_diff: float = MAX_NEAR_THRESHOLD_DIFF
    probe_windows: int = 0
    refused_because: str = ""

    def to_dict(self) -> dict[str, object]:
        """Plain dict for parity.json."""
        return asdict(self)


def _pearson(a: FloatArray, b: FloatArray) -> float:
    if a.size < 2 or float(np.std(a)) == 0.0 or float(np.std(b)) == 0.0:
        # Constant scores carry no ranking to compare: identical means perfect agreement.
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(np.corrcoef(a, b)[0, 1])


def compare(
    fp32: Float32Array,
    int8: Float32Array,
    threshold: float,
    max_flip_fraction: float = MAX_FLIP_FRACTION,
    max_near_diff: float = MAX_NEAR_THRESHOLD_DIFF,
    probes: int = 0,
) -> Parity:
    """Parity figures of two score vectors over the same windows, and the gate's verdict.

    Examples
    --------
    >>> fp32 = np.array([0.2, 0.9, 1.1, 3.0], dtype=np.float32)
    >>> compare(fp32, fp32 + np.float32(0.01), threshold=1.0).passed
    True
    >>> flipped = compare(fp32, np.array([0.2, 1.05, 0.95, 3.0], dtype=np.float32), 1.0)
    >>> flipped.decision_flips, flipped.passed
    (2, False)
    """
    a = fp32.astype(np.float64)
    b = int8.astype(np.float64)
    diff = np.abs(a - b)
    rel = diff / np.maximum(np.abs(a), np.finfo(np.float32).tiny)
    flips = int(np.count_nonzero((a > threshold) != (b > threshold)))
    n = int(a.size)
    pearson = _pearson(a, b)
    fraction = flips / n if n else 0.0
    near = np.abs(a - threshold) <= NEAR * threshold
    near_diff = float(diff[near].max()) / threshold if near.any() else 0.0
    near_p95 = float(np.quantile(diff[near], NEAR_QUANTILE)) / threshold if near.any() else 0.0
    why = []
    if fraction > max_flip_fraction:
        why.append(
            f"{flips} of {n} decisions flipped ({fraction:.2%}, allowed {max_flip_fraction:.2%})"
        )
    if near_p95 > max_near_diff:
        why.append(
            f"near the threshold one int8 score in 20 is off by {near_p95:.1%} of it or more "
            f"(allowed {max_near_diff:.1%}, over {int(near.sum())} windows; at most "
            f"{near_diff:.1%})"
        )
    return Parity(
        windows=n,
        threshold=threshold,
        pearson=pearson,
        max_abs_diff=float(diff.max()) if n else 0.0,
        max_rel_diff=float(rel.max()) if n else 0.0,
        mean_abs_diff=float(diff.mean()) if n else 0.0,
        decision_flips=flips,
        decision_flip_fraction=fraction,
        min_pearson=MIN_PEARSON,
        max_flip_fraction=max_flip_fraction,
        passed=not why,
        near_threshold_windows=int(near.sum()),
        near_threshold_max_diff=near_diff,
        near_threshold_p95_diff=near_p95,
        max_near_threshold_diff=max_near_diff,
        probe_windows=probes,
        refused_because="; ".join(why),
    )


def parity_warning(parity: Parity, allow_loss: bool = False) -> str:
    """The warning of a failed gate ("" when int8 passed): fp32 ships alone, or int8 anyway."""
    if parity.passed:
        return ""
    found = (
        f"the int8 model does not follow fp32 on {parity.windows} checked windows: "
        f"{parity.refused_because} (pearson {parity.pearson:.4f}, max abs diff "
        f"{parity.max_abs_diff:.3g})"
    )
    if allow_loss:
        return f"warning: {found}; int8 exported anyway (--allow-parity-loss)"
    return (
        f"warning: {found}; the bundle ships the fp32 model only, which the agent runs "
        "whatever its [model] precision (pass --allow-parity-loss to ship int8 anyway)"
    )


def probe_windows(held_out: Float32Array) -> Float32Array:
    """Held-out windows with a step on one channel in their second half, at every size of
    PROBE_STEPS and both signs: windows near and above the threshold, made from normal ones."""
    if held_out.shape[0] == 0:
        return held_out
    bases = held_out[np.unique(np.linspace(0, held_out.shape[0] - 1, PROBE_BASES).astype(int))]
    _, window, channels = held_out.shape
    probes = []
    for channel in range(channels):
        for step in PROBE_STEPS:
            for sign in (1.0, -1.0):
                w = bases.copy()
                w[:, window // 2 :, channel] += np.float32(sign * step)
                probes.append(w)
    return np.concatenate(probes).astype(np.float32)


def write_parity(path: Path, parity: Parity, quantization: dict[str, object]) -> None:
    """Write parity.json: the figures, the pass limits and how the int8 model was made."""
    payload = {**parity.to_dict(), "quantization": quantization}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _rank(parity: Parity) -> tuple[bool, float, int, float]:
    near = parity.near_threshold_p95_diff
    return (not parity.passed, near, parity.decision_flips, -parity.pearson)


def quantize_best(
    fp32_path: Path,
    int8_path: Path,
    train_windows: Float32Array,
    held_out: Float32Array,
    fp32_scores: Float32Array,
    threshold: float,
    max_flip_fraction: float = MAX_FLIP_FRACTION,
    max_near_diff: float = MAX_NEAR_THRESHOLD_DIFF,
) -> tuple[Parity, dict[str, Any]]:
    """Quantise dynamically and statically (ranges from the train windows), keep the one
    that follows fp32 better on the held-out windows and their probes: the smaller
    divergence near the threshold (its 95th percentile), then fewer flipped decisions, then the
    higher score correlation. Both candidates' figures go into the returned record."""
    static_path = int8_path.with_name(int8_path.name + ".static")
    probes = probe_windows(held_out)
    checked = np.concatenate([held_out, probes])
    reference = np.concatenate([fp32_scores, score_onnx(fp32_path, probes)[0]])
    candidates: dict[str, tuple[Parity, dict[str, Any]]] = {}
    for method, path in (("dynamic", int8_path), ("static", static_path)):
        info = quantize_int8(
            fp32_path, path, per_channel=True, method=method, calibration=train_windows
        )
        scores, _ = score_onnx(path, checked)
        parity = compare(
            reference, scores, threshold, max_flip_fraction, max_near_diff, len(probes)
        )
        candidates[method] = (parity, info)
    best = min(candidates, key=lambda m: _rank(candidates[m][0]))
    if best == "static":
        static_path.replace(int8_path)
    else:
        static_path.unlink()
    parity, info = candidates[best]
    info = {
        **info,
        "chosen_over": {
            m: {
                "pearson": p.pearson,
                "decision_flips": p.decision_flips,
                "max_abs_diff": p.max_abs_diff,
                "near_threshold_max_diff": p.near_threshold_max_diff,
                "near_threshold_p95_diff": p.near_threshold_p95_diff,
            }
            for m, (p, _) in candidates.items()
        },
    }
    return parity, info
