"""Which tag an alarm is about: every detector's per-tag evidence fused into one ranking. Pure.

The VAE's reconstruction error alone often names the wrong tag: where two tags move together
in normal operation (the barrel and the cooling water both follow the hall temperature), the
model reconstructs each from the other, and a fault on one shows as error on its neighbour.
The shift detector and the SPC charts judge each tag against its own normal only, so they do
not have that failure; they are blind where the VAE is strong (a tag that keeps its level and
spread but stops following its neighbours). Each source votes with its shares of the tags,
weighted by how far it is past its own threshold, so a detector that sees nothing does not
vote:

    vae    its contributions, weight min(score / threshold, CAP)
    shift  each watched tag's squared shift (fast EWMA minus baseline, in its scale), as
           shares, weight min(score / threshold, CAP)
    spc    each tag's recent rule hits (a decaying count), as shares, weight SPC_WEIGHT
           while any tag has hits

`TagAttribution.update` runs once per clock row (O(tags)); its result is the fused share per
tag, summing to 1 (all zero while no source votes), smoothed over the last few rows.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from agent.types import Score

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
CAP = 3.0  # a source far past its threshold counts at most this much
SPC_WEIGHT = 1.0
SHIFT_FLOOR = 0.8  # below this share of its threshold the shift detector sees only noise
SUSTAINED_HITS = 1.5  # a tag with fewer decayed hits broke a rule by chance
HIT_MEMORY = 0.85  # rule hits decay by this factor per row
SMOOTHING = 0.3  # weight of the newest row in the fused ranking


class TagAttribution:
    """Fused per-tag shares of the line's evidence, one update per row.

    Examples
    --------
    >>> a = TagAttribution(3)
    >>> vae = Score(6.0, 3.0, (0.2, 0.7, 0.1))  # the VAE blames tag 1 ...
    >>> shift = np.array([5.0, 1.0, 0.0])  # ... the shift detector and SPC see tag 0 move
    >>> shift_score, broken = Score(5.0, 2.0, (0.8, 0.2, 0.0)), np.array([True, False, False])
    >>> for _ in range(5):
    ...     shares = a.update(vae, shift_score, shift, broken)
    >>> int(np.argmax(shares))
    0
    """

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self._hits = np.zeros(channels)
        self._fused = np.zeros(channels)

    def reset(self) -> None:
        """Forget the hits and the ranking."""
        self._hits = np.zeros(self.channels)
        self._fused = np.zeros(self.channels)

    def update(
        self,
        vae: Score | None,
        shift: Score | None,
        shift_z: FloatArray | None,
        spc_broken: BoolArray,
    ) -> FloatArray:
        """Take one row's evidence; return the fused shares per tag (a copy)."""
        self._hits = HIT_MEMORY * self._hits + spc_broken
        votes = np.zeros(self.channels)
        own = np.ones(self.channels) if shift_z is None else 1.0 + np.square(shift_z)
        if vae is not None and vae.threshold > 0:
            votes += min(vae.ratio, CAP) * _shares(np.asarray(vae.contributions) * own)
        if shift is not None and shift_z is not None and shift.threshold > 0:
            votes += min(max(shift.ratio - SHIFT_FLOOR, 0.0), CAP) * _shares(np.square(shift_z))
        if self._hits.max(initial=0.0) >= SUSTAINED_HITS:
            votes += SPC_WEIGHT * _shares(np.square(self._hits))
        total = float(votes.sum())
        if total > 0 and not self._fused.any():
            self._fused = votes / total  # the first evidence starts the ranking
        elif total > 0:
            self._fused += SMOOTHING * (votes / total - self._fused)
        return self._fused.copy()

    @property
    def shares(self) -> FloatArray:
        """The fused shares after the last row."""
        return self._fused.copy()

    def state(self) -> dict[str, list[float]]:
        """The running hits and ranking, JSON-able (a detector snapshot's `attribution`)."""
        return {"hits": self._hits.tolist(), "fused": self._fused.tolist()}

    def restore(self, state: dict[str, list[float]]) -> None:
        """Continue from a saved `state()`; ValueError if it is of another number of tags."""
        hits = np.asarray(state["hits"], dtype=np.float64)
        fused = np.asarray(state["fused"], dtype=np.float64)
        if hits.shape != (self.channels,) or fused.shape != (self.channels,):
            raise ValueError("the saved attribution is of another number of tags")
        self._hits, self._fused = hits, fused


def _shares(x: FloatArray) -> FloatArray:
    x = np.where(np.isfinite(x) & (x > 0), x, 0.0)
    total = float(x.sum())
    return x / total if total > 0 else x


def ranked(channels: list[str], shares: FloatArray, top: int = 3) -> list[tuple[str, float]]:
    """The `top` tags by fused share, most likely first."""
    order = np.argsort(-shares, kind="stable")[:top]
    return [(channels[i], round(float(shares[i]), 4)) for i in order]
