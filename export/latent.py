"""The latent term of `--score mean+latent` / `max+latent`: how far a window's posterior mean
lies from where the training windows' posterior means lie.

A reconstruction error misses what the model reconstructs well: a moderate level shift of one
channel (SKAB's valve closures move the flow meter by 1-3 training sd, well inside its range)
comes back almost unchanged from the decoder, so the error barely moves. The encoder still
puts such a window somewhere the training windows never went. The term measures that:

    d(x)  = sqrt(mean_k(((mu(x) - center) @ whiten)_k ** 2))   a Mahalanobis distance per
            latent dimension, `center` and covariance from the training windows' mu
    score = reduce(contrib) / rec_unit + weight * d(x) / latent_unit

`rec_unit` and `latent_unit` are the means of the two parts on the held-out normal windows, so
each part reads 1.0 on a typical window and neither dominates by its units. The threshold is
then calibrated on the combined score as before. `contrib` stays the reconstruction error per
channel (which tag is wrong); the latent part has no channel of its own.

How it was chosen (benchmarks/skab.py): on the selection folders valve2 + other, averaged over
five training seeds, adding the term with weight 1 raised F1 from 0.789 to 0.815 and cut the
false-alarm rate from 26.1 % to 17.3 %; valve1, held out, went from 0.782 to 0.789 F1 and from
5.3 % to 2.1 % FAR. It is measured on SKAB only. On a synthetic stream of independent noise
with a 1.5 sd step of one channel the term lowered the AUC (0.955 -> 0.912, mean of four
seeds): the distance adds noise of its own where the reconstruction already sees the fault.
So `lineside-export train` keeps `--score max` as its default and a line opts in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

Float32Array = npt.NDArray[np.float32]

#: Weight of the latent distance against the reconstruction part (both in held-out units).
LATENT_WEIGHT = 1.0
#: Added to the covariance's diagonal, relative to its mean variance: a latent dimension the
#: encoder collapsed (constant mu) must not turn rounding noise into a huge distance.
COVARIANCE_RIDGE = 1e-6
SCORES = ("max", "mean", "max+latent", "mean+latent")


def split_score(score: str) -> tuple[str, bool]:
    """`mean+latent` -> ("mean", True); `max` -> ("max", False)."""
    reduce, _, extra = score.partition("+")
    return reduce, extra == "latent"


@dataclass(frozen=True)
class LatentTerm:
    """The fitted constants of the latent term, as the exported graph holds them."""

    center: Float32Array  # (latent,)
    whiten: Float32Array  # (latent, latent): identity covariance on the training windows
    rec_unit: float
    latent_unit: float
    weight: float = LATENT_WEIGHT

    def to_manifest(self) -> dict[str, Any]:
        """The figures the bundle records (the graph holds the constants themselves)."""
        return {
            "weight": self.weight,
            "rec_unit": self.rec_unit,
            "latent_unit": self.latent_unit,
            "center": [round(float(v), 6) for v in self.center],
        }


def whitening(mu: Float32Array) -> tuple[Float32Array, Float32Array]:
    """Mean and whitening matrix W of row vectors `mu`: (mu - mean) @ W has covariance I.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(500, 3)) * [1.0, 10.0, 0.1]
    >>> c, w = whitening(z.astype(np.float32))
    >>> bool(np.allclose(np.cov((z - c) @ w, rowvar=False), np.eye(3), atol=0.01))
    True
    """
    data = np.asarray(mu, dtype=np.float64)
    center = data.mean(axis=0)
    cov = np.atleast_2d(np.cov(data, rowvar=False))
    ridge = COVARIANCE_RIDGE * max(float(np.mean(np.diag(cov))), 1e-12)
    chol = np.linalg.cholesky(cov + ridge * np.eye(cov.shape[0]))
    whiten = np.linalg.inv(chol).T
    return center.astype(np.float32), whiten.astype(np.float32)


def latent_distance(mu: torch.Tensor, center: torch.Tensor, whiten: torch.Tensor) -> torch.Tensor:
    """d(x) of a batch of posterior means (batch, latent) -> (batch,)."""
    z = torch.matmul(mu - center, whiten)
    return torch.sqrt(torch.mean(z * z, dim=1))
