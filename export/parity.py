"""Scoring with onnxruntime, the calibrated threshold, fp32 vs int8 parity, and the choice
between dynamic and static int8 by that parity.

Both models run on the held-out calibration windows. Parity passes when the scores of the two
models correlate at `MIN_PEARSON` or better and no more than `MAX_FLIP_FRACTION` of the windows
change their decision (score > threshold) between fp32 and int8. The figures are written to
`parity.json` in the bundle either way.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from export.errors import ExportError
from export.quantize import quantize_int8

Float32Array = npt.NDArray[np.float32]
FloatArray = npt.NDArray[np.float64]

MIN_PEARSON = 0.99
MAX_FLIP_FRACTION = 0.01
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

    def to_dict(self) -> dict[str, object]:
        """Plain dict for parity.json."""
        return asdict(self)


def _pearson(a: FloatArray, b: FloatArray) -> float:
    if a.size < 2 or float(np.std(a)) == 0.0 or float(np.std(b)) == 0.0:
        # Constant scores carry no ranking to compare: identical means perfect agreement.
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(np.corrcoef(a, b)[0, 1])


def compare(fp32: Float32Array, int8: Float32Array, threshold: float) -> Parity:
    """Parity figures of two score vectors over the same windows."""
    a = fp32.astype(np.float64)
    b = int8.astype(np.float64)
    diff = np.abs(a - b)
    rel = diff / np.maximum(np.abs(a), np.finfo(np.float32).tiny)
    flips = int(np.count_nonzero((a > threshold) != (b > threshold)))
    n = int(a.size)
    pearson = _pearson(a, b)
    fraction = flips / n if n else 0.0
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
        max_flip_fraction=MAX_FLIP_FRACTION,
        passed=pearson >= MIN_PEARSON and fraction <= MAX_FLIP_FRACTION,
    )


def check_parity(parity: Parity, allow_loss: bool = False) -> None:
    """Raise ExportError when parity failed, unless the loss is explicitly allowed."""
    if parity.passed or allow_loss:
        return
    raise ExportError(
        f"int8 model does not match fp32 on {parity.windows} calibration windows: "
        f"pearson {parity.pearson:.4f} (need >= {parity.min_pearson}), "
        f"{parity.decision_flips} decisions flipped ({parity.decision_flip_fraction:.2%}, "
        f"allowed {parity.max_flip_fraction:.0%}), max abs diff {parity.max_abs_diff:.3g}; "
        "pass --allow-parity-loss to export anyway"
    )


def write_parity(path: Path, parity: Parity, quantization: dict[str, object]) -> None:
    """Write parity.json: the figures, the pass limits and how the int8 model was made."""
    payload = {**parity.to_dict(), "quantization": quantization}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _rank(parity: Parity) -> tuple[int, float]:
    return (parity.decision_flips, -parity.pearson)


def quantize_best(
    fp32_path: Path,
    int8_path: Path,
    train_windows: Float32Array,
    held_out: Float32Array,
    fp32_scores: Float32Array,
    threshold: float,
) -> tuple[Parity, dict[str, Any]]:
    """Quantise dynamically and statically (ranges from the train windows), keep the one
    that follows fp32 better on the held-out windows: fewer flipped decisions, then the
    higher score correlation. Both candidates' figures go into the returned record."""
    static_path = int8_path.with_name(int8_path.name + ".static")
    candidates: dict[str, tuple[Parity, dict[str, Any]]] = {}
    for method, path in (("dynamic", int8_path), ("static", static_path)):
        info = quantize_int8(
            fp32_path, path, per_channel=True, method=method, calibration=train_windows
        )
        scores, _ = score_onnx(path, held_out)
        candidates[method] = (compare(fp32_scores, scores, threshold), info)
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
            }
            for m, (p, _) in candidates.items()
        },
    }
    return parity, info
