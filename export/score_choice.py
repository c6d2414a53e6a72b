"""The window score, chosen on held-out normal windows with no label: the candidate that
catches the most synthetic steps at the same false-alarm budget.

Every candidate of `export.latent.SCORES` (the largest or the mean per-channel error, with or
without the latent distance) is computed from one trained model on the held-out normal windows
and on two families of probes made from them, weighted equally: faults that move one tag
(`export.parity.probe_windows`: a step of 1, 2, 4 or 8 training sd on one channel in the
second half of a window, each channel, both signs) and faults that move every tag a little
(`spread_probes`: a step of the same sizes spread over all channels, 1/sqrt(channels) of it on
each, with fixed random signs). Each candidate's threshold is set by the budget on its
held-out scores (export/budget.py); the share of probes above it is its sensitivity, and the
most sensitive wins (ties: the listed order).
A line of many channels where a fault moves one tends to get `max`; one whose faults move
several channels a little, `mean`; the latent term where the decoder reproduces a moderate
level change that the encoder still places where no training window went.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from export.budget import budget_threshold
from export.latent import SCORES, latent_distance, whitening
from export.onnx_export import scoring_module
from export.parity import probe_windows
from export.train import Vae

Float32Array = npt.NDArray[np.float32]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ScoreChoice:
    """The chosen score and each candidate's sensitivity to the probes."""

    score: str
    sensitivity: dict[str, float]
    probes: int

    def line(self) -> str:
        """What the training log says."""
        shares = ", ".join(f"{s} {100 * v:.1f} %" for s, v in self.sensitivity.items())
        return (
            f"score {self.score}: catches the most of {self.probes} synthetic steps (one channel, "
            f"or spread over all) at the false-alarm budget ({shares}); --score chooses instead"
        )

    def record(self) -> dict[str, Any]:
        """The manifest's `training.score_choice`."""
        return {
            "chosen": self.score,
            "rule": "the largest share of held-out windows with a step (1-8 sd, on one channel "
            "or spread over all, each family half) above the candidate's own budget threshold",
            "sensitivity": {s: round(v, 4) for s, v in self.sensitivity.items()},
            "probes": self.probes,
        }


#: Sign patterns of the spread probes (fixed: the same choice for the same data).
SPREAD_PATTERNS = 8


def spread_probes(held_out: Float32Array) -> Float32Array:
    """Held-out windows with a step spread over every channel in their second half: sizes of
    PROBE_STEPS in total (each channel 1/sqrt(channels) of it), SPREAD_PATTERNS sign patterns."""
    from export.parity import PROBE_BASES, PROBE_STEPS

    if held_out.shape[0] == 0:
        return held_out
    bases = held_out[np.unique(np.linspace(0, held_out.shape[0] - 1, PROBE_BASES).astype(int))]
    _, window, channels = held_out.shape
    signs = np.random.default_rng(0).choice([-1.0, 1.0], size=(SPREAD_PATTERNS, channels))
    probes = []
    for pattern in signs:
        for step in PROBE_STEPS:
            w = bases.copy()
            w[:, window // 2 :, :] += (step / np.sqrt(channels) * pattern).astype(np.float32)
            probes.append(w)
    return np.concatenate(probes).astype(np.float32)


def _parts(
    model: Vae,
    train: Float32Array,
    windows: Float32Array,
    baseline: Float32Array,
    relative: Float32Array | None,
) -> tuple[FloatArray, FloatArray]:
    """Per-channel contributions (n, channels) and latent distances (n,) of `windows`."""
    scoring = scoring_module(model, baseline, relative, "mean")
    with torch.no_grad():
        _, mu_train = scoring.errors_and_mu(torch.from_numpy(np.ascontiguousarray(train)))
        center, whiten = whitening(mu_train.numpy())
        errors, mu = scoring.errors_and_mu(torch.from_numpy(np.ascontiguousarray(windows)))
        contrib = errors / torch.from_numpy(baseline)
        dist = latent_distance(mu, torch.from_numpy(center), torch.from_numpy(whiten))
    return contrib.numpy().astype(np.float64), dist.numpy().astype(np.float64)


def choose_score(
    model: Vae,
    train: Float32Array,
    held_out: Float32Array,
    baseline: Float32Array,
    relative: Float32Array | None,
    budget: tuple[float, float],
    smooth: Callable[[FloatArray], FloatArray] | None = None,
) -> ScoreChoice:
    """The most sensitive candidate of SCORES at the budget (see the module docstring)."""
    single, spread = probe_windows(held_out), spread_probes(held_out)
    probes = np.concatenate([single, spread])
    contrib, dist = _parts(model, train, np.concatenate([held_out, probes]), baseline, relative)
    n, n_single = held_out.shape[0], single.shape[0]
    sensitivity: dict[str, float] = {}
    for name in SCORES:
        reduce, with_latent = name.partition("+")[0], name.endswith("+latent")
        rec = contrib.max(axis=1) if reduce == "max" else contrib.mean(axis=1)
        score = rec / max(float(rec[:n].mean()), 1e-12)
        if with_latent:
            score = score + dist / max(float(dist[:n].mean()), 1e-12)
        normal = smooth(score[:n]) if smooth is not None else score[:n]
        threshold = budget_threshold(normal, *budget).threshold
        caught = score[n:] > threshold
        sensitivity[name] = (
            0.5 * (float(np.mean(caught[:n_single])) + float(np.mean(caught[n_single:])))
            if probes.size
            else 0.0
        )
    best = max(SCORES, key=lambda s: (sensitivity[s], -SCORES.index(s)))
    return ScoreChoice(best, sensitivity, int(probes.shape[0]))
