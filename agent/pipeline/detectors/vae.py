"""The VAE detector: scale a window, run the ONNX model in onnxruntime, return a Score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from agent.bundles.bundle import Bundle, load_bundle
from agent.core.scaler import RobustScaler
from agent.pipeline.detectors.base import FloatArray
from agent.types import Score


def make_session(model: Path, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session sized for a line-side box: few threads, no spinning."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads burn a core waiting for work; the loop is idle most of the time.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


class VaeDetector:
    """Reconstruction-error detector backed by a bundle's ONNX model.

    `score_one` takes raw engineering values (window x channels in the manifest's order) and
    returns the window's score (the largest, or the mean, of the per-channel reconstruction
    errors, each in units of its normal level), with one contribution per channel, against
    the threshold calibrated at export time. The model is frozen, so the detector has no
    state beyond its bundle: pickling it keeps the bundle path and reopens the session.
    """

    def __init__(self, bundle: Bundle, precision: str = "int8", threads: int = 1) -> None:
        manifest = bundle.manifest
        self.bundle = bundle
        self.precision = precision
        self.threads = threads
        self.window = manifest.window
        self.channels = len(manifest.channels)
        self.threshold = manifest.threshold
        self.scaler = RobustScaler.from_dict(manifest.scaler)
        self.session = make_session(bundle.model_path(precision), threads)

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
        return {"path": self.bundle.path, "precision": self.precision, "threads": self.threads}

    def __setstate__(self, state: dict[str, object]) -> None:
        """Reopen the bundle (hashes checked again) and its session."""
        path, precision, threads = state["path"], state["precision"], state["threads"]
        assert isinstance(path, Path) and isinstance(precision, str) and isinstance(threads, int)
        self.__init__(load_bundle(path), precision, threads)  # type: ignore[misc]

    def learn_one(self, window: FloatArray) -> None:
        """The exported model is frozen on the device; retraining happens on the workstation."""
