"""How the VAE alarm and the SPC alarm become the line's one anomaly decision. Pure.

The fused decision is the live `LineResult.alarm_active` (the `AlarmActive` tag) and the
`anomaly` column of `lineside score`; both alarms keep their own events and tags either way.
The modes:

    vae                    the VAE alarm alone; SPC still raises its own SPC events
    vae-or-spc             either alarm (an SPC rule sustained in `spc_hits` of `spc_span` rows)
    vae-or-sustained-spc   the VAE alarm, or an SPC alarm that has stayed active for `sustain`
                           rows in a row (a level shift or a stuck sensor, not a spike)
    shift                  the drift-tolerant shift detector's alarm alone
                           (agent.pipeline.detectors.shift)
    vae-or-shift           either the VAE alarm or the shift alarm
    vae-plus-shift         one score: `weight` x VAE score / its threshold + (1 - weight) x
                           shift score / its threshold, raised above 1 (debounced like the
                           VAE alarm, cleared after `clear_after` rows below `clear_ratio`,
                           the site's hysteresis, as the VAE alarm clears)

The three shift modes need a bundle with `detector.shift`.

The export writes the mode into the bundle (`detector.fusion`): `vae` unless told otherwise
(export/calibrate.py says why), or with `--fusion auto` the rule of `choose_fusion` on the
held-out normal rows only (SPC joins the decision only when its alarm stays quiet there). A
site's `[detection] fusion` overrides it. A bundle without the field keeps the historic
`vae-or-spc`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from agent.bundles.manifest import FUSIONS, LEGACY_FUSION, SHIFT_FUSIONS, FusionMode
from agent.types import Score

__all__ = ["FUSIONS", "LEGACY_FUSION", "SHIFT_FUSIONS", "Fusion", "FusionMode", "choose_fusion"]

#: vae-plus-shift's weight of the VAE score (the shift score gets the rest); chosen on SKAB's
#: valve2 + other folders among 0.3, 0.5, 0.7 (benchmarks/skab.py), valve1 held out.
VAE_WEIGHT = 0.3
#: SPC joins the decision when its alarm is active on at most this share of held-out normal
#: rows: the VAE's threshold (quantile 0.999 x margin) allows about 0.1 % there, so an SPC
#: alarm that fires on more than 1 % of normal rows would dominate the fused false-alarm rate.
SPC_QUIET_SHARE = 0.01


class Fusion:
    """Fuse a line's alarms into its one decision, row by row.

    `summed` gives vae-plus-shift's one score (its alarm lives in the line's alarm table,
    agent.pipeline.line, like every other); `update` takes the alarms' states after the row.

    Examples
    --------
    >>> f = Fusion("vae-or-sustained-spc", sustain=3)
    >>> [f.update(vae=False, spc=s) for s in (True, True, True, True, False)]
    [False, False, True, True, False]
    >>> Fusion("vae").update(vae=False, spc=True)
    False
    >>> Fusion("vae-or-spc").update(vae=False, spc=True)
    True
    >>> f = Fusion("vae-plus-shift", weight=0.5)
    >>> [round(f.summed(vae_ratio=r, shift_ratio=1.4).value, 2) for r in (0.2, 0.8)]
    [0.8, 1.1]
    >>> g = Fusion("vae-plus-shift", weight=0.5)
    >>> g.restore(f.state())  # the last VAE ratio (0.8) carries on when a row has none
    >>> g.summed(vae_ratio=None, shift_ratio=1.9).value
    1.35
    >>> g.update(vae=False, spc=False, plus=True)  # the summed score's alarm decides
    True
    """

    def __init__(self, mode: str, sustain: int = 1, weight: float = VAE_WEIGHT) -> None:
        if mode not in FUSIONS:
            raise ValueError(f"fusion {mode!r} is not one of {', '.join(FUSIONS)}")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"fusion weight {weight} must be in [0, 1]")
        self.mode = mode
        self.sustain = max(1, sustain)
        self.weight = weight
        self._spc_run = 0
        self._vae_ratio = 0.0

    @property
    def sums(self) -> bool:
        """Whether the decision is the summed score's alarm (vae-plus-shift)."""
        return self.mode == FusionMode.VAE_PLUS_SHIFT

    def reset(self) -> None:
        """Forget how long the SPC alarm has been active, and the last VAE ratio."""
        self._spc_run = 0
        self._vae_ratio = 0.0

    def state(self) -> dict[str, object]:
        """The SPC run length and the last VAE ratio, JSON-able."""
        return {"mode": self.mode, "spc_run": self._spc_run, "vae_ratio": self._vae_ratio}

    def restore(self, state: dict[str, object]) -> None:
        """Continue from a saved `state()`; ValueError if it was saved under another mode."""
        if state["mode"] != self.mode:
            raise ValueError(f"fusion state is of mode {state['mode']!r}, not {self.mode!r}")
        self._spc_run = int(str(state["spc_run"]))
        self._vae_ratio = float(str(state["vae_ratio"]))

    def summed(self, vae_ratio: float | None, shift_ratio: float | None) -> Score:
        """vae-plus-shift's score for one row, against 1: `weight` x the VAE's score / its
        threshold + (1 - weight) x the shift's. A row without a VAE score (window not full)
        keeps the last one, 0 before the first; a row without a shift score counts 0."""
        if vae_ratio is not None and math.isfinite(vae_ratio):
            self._vae_ratio = vae_ratio
        s = shift_ratio if shift_ratio is not None and math.isfinite(shift_ratio) else 0.0
        total = self.weight * self._vae_ratio + (1.0 - self.weight) * s
        return Score(total, 1.0, (self.weight, 1.0 - self.weight))

    def update(self, vae: bool, spc: bool, shift: bool = False, plus: bool = False) -> bool:
        """The fused decision for one row, given the alarms' states after that row (`plus`:
        the summed score's alarm)."""
        self._spc_run = self._spc_run + 1 if spc else 0
        if self.mode == FusionMode.VAE_PLUS_SHIFT:
            return plus
        if self.mode == FusionMode.VAE:
            return vae
        if self.mode == FusionMode.VAE_OR_SPC:
            return vae or spc
        if self.mode == FusionMode.SHIFT:
            return shift
        if self.mode == FusionMode.VAE_OR_SHIFT:
            return vae or shift
        return vae or self._spc_run >= self.sustain


def alarm_share(mode: str, spc_active: npt.NDArray[np.bool_], sustain: int) -> float:
    """Share of rows on which `mode`'s SPC part alone would hold the fused alarm."""
    fusion = Fusion(mode, sustain)
    hits = [fusion.update(vae=False, spc=bool(s)) for s in spc_active]
    return float(np.mean(hits)) if hits else 0.0


def choose_fusion(spc_active: npt.NDArray[np.bool_], sustain: int) -> tuple[str, dict[str, float]]:
    """The fusion mode for a bundle, from the SPC alarm on held-out normal rows only.

    The most inclusive mode whose SPC part stays at or under `SPC_QUIET_SHARE` there wins;
    the measured shares are returned for the manifest.

    Examples
    --------
    >>> import numpy as np
    >>> choose_fusion(np.zeros(200, dtype=bool), sustain=16)[0]
    'vae-or-spc'
    >>> choose_fusion(np.arange(200) % 10 < 3, sustain=16)[0]
    'vae-or-sustained-spc'
    >>> choose_fusion(np.ones(200, dtype=bool), sustain=16)[0]
    'vae'
    """
    shares = {m: alarm_share(m, spc_active, sustain) for m in FUSIONS if "spc" in m}
    for mode in ("vae-or-spc", "vae-or-sustained-spc"):
        if shares[mode] <= SPC_QUIET_SHARE:
            return mode, shares
    return "vae", shares
