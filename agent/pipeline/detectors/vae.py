"""The VAE detector: a sliding window of rows, scored by the bundle's ONNX model in onnxruntime.

`VaeModel` scores one window (scale it, run the model, return a Score); `VaeDetector` is the
line's detector: it keeps the window, asks its model for a score every `hop` rows once the
window is full, starts the window over at a gap, and smooths the scores when the bundle says so.
A hot swap replaces the model and keeps the window (agent.runtime.hotswap).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from agent.bundles.bundle import Bundle, load_bundle
from agent.core.scaler import RobustScaler
from agent.core.window import SlidingWindow
from agent.pipeline.detectors.base import FloatArray, WindowModel
from agent.pipeline.golden import FLOAT_PRECISION, fallback_reason
from agent.types import Score

log = logging.getLogger(__name__)


def make_session(model: Path, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session sized for a line-side box: few threads, no spinning."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads burn a core waiting for work; the loop is idle most of the time.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


class VaeModel:
    """Reconstruction-error scorer of windows, backed by a bundle's ONNX model.

    `score_one` takes raw engineering values (window x channels in the manifest's order) and
    returns the window's score (the largest, or the mean, of the per-channel reconstruction
    errors, each in units of its normal level), with one contribution per channel, against
    the threshold calibrated at export time. The model is frozen, so it has no
    state beyond its bundle: pickling it keeps the bundle path and reopens the session.

    An int8 model that does not reproduce the bundle's golden outputs on this CPU, or a bundle
    that ships no int8 model, runs as fp32 (agent.pipeline.golden): `precision` is what runs,
    `requested` what was asked for, `fallback` why they differ ("" when they do not).
    """

    def __init__(self, bundle: Bundle, precision: str = "int8", threads: int = 1) -> None:
        manifest = bundle.manifest
        self.bundle = bundle
        self.requested = precision
        self.threads = threads
        self.window = manifest.window
        self.channels = len(manifest.channels)
        self.threshold = manifest.threshold
        self.scaler = RobustScaler.from_dict(manifest.scaler)
        shipped = precision in manifest.models
        session = make_session(bundle.model_path(precision), threads) if shipped else None
        self.fallback = fallback_reason(bundle, precision, session)
        if self.fallback or session is None:
            log.warning("%s: %s", bundle.path, self.fallback)
            precision = FLOAT_PRECISION
            session = make_session(bundle.model_path(precision), threads)
        self.precision = precision
        self.session = session

    def score_batch(self, windows: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Scores (n,) and contributions (n, channels) of a batch of raw windows."""
        x = self.scaler.transform(windows).astype(np.float32)
        score, contrib = self.session.run(["score", "contrib"], {"x": x})
        return score.astype(np.float64), contrib.astype(np.float64)

    def score_one(self, window: FloatArray) -> Score:
        """Score one raw window."""
        score, contrib = self.score_batch(window[np.newaxis])
        return Score(
            value=float(score[0]),
            threshold=self.threshold,
            contributions=tuple(float(c) for c in contrib[0]),
        )

    def __getstate__(self) -> dict[str, object]:
        """Pickle the bundle reference, not the onnxruntime session (it cannot be pickled)."""
        return {"path": self.bundle.path, "precision": self.requested, "threads": self.threads}

    def __setstate__(self, state: dict[str, object]) -> None:
        """Reopen the bundle (hashes checked again) and its session."""
        path, precision, threads = state["path"], state["precision"], state["threads"]
        assert isinstance(path, Path) and isinstance(precision, str) and isinstance(threads, int)
        self.__init__(load_bundle(path), precision, threads)  # type: ignore[misc]


class VaeDetector:
    """The line's VAE: a window of rows in front of a `WindowModel`, and the score's EWMA.

    `update` returns the score of the window ending at this row, every `hop` rows once the
    window is full; a row with a NaN (a tag without a good reading) starts the window over. With
    `smoothing` below 1 the score is the EWMA of the window scores (weight `smoothing` on the
    newest), thresholded in place of the raw score: a one-window spike is not a fault.
    """

    name = "vae"

    def __init__(
        self, model: WindowModel, window: int, channels: int, hop: int = 1, smoothing: float = 1.0
    ) -> None:
        self.model = model
        self.window = SlidingWindow(window, channels, hop)
        self.smoothing = smoothing
        self._smoothed: float | None = None

    def update(self, row: FloatArray) -> Score | None:
        """Push one row; the (smoothed) score when a window is due, else None."""
        if not np.isfinite(row).all():
            self.reset()  # a gap: the next window starts fresh
            return None
        window = self.window.push(row)
        if window is None:
            return None
        return self._smooth(self.model.score_one(window))

    def _smooth(self, score: Score) -> Score:
        if self.smoothing >= 1.0:
            return score
        prev = self._smoothed
        value = score.value if prev is None else prev + self.smoothing * (score.value - prev)
        self._smoothed = value
        return Score(value=value, threshold=score.threshold, contributions=score.contributions)

    def observe_alarm(self, active: bool) -> None:
        """The VAE's model is frozen: the alarm changes nothing."""

    def reset(self) -> None:
        """Forget the window and the smoothed score."""
        self.window.reset()
        self._smoothed = None

    def state(self) -> dict[str, object]:
        """The window's rows and the smoothed score, JSON-able."""
        return {"window": self.window.state(), "smoothed": self._smoothed}

    def restore(self, state: dict[str, object]) -> None:
        """Continue from a saved `state()`."""
        window = state["window"]
        if not isinstance(window, dict):
            raise ValueError("vae state: 'window' must be a window state")
        self.window.restore(window)
        smoothed = state["smoothed"]
        self._smoothed = None if smoothed is None else float(str(smoothed))
