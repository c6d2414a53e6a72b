"""How the VAE alarm and the SPC alarm become the line's one anomaly decision. Pure.

The fused decision is the live `LineResult.alarm_active` (the `AlarmActive` tag) and the
`anomaly` column of `lineside score`; both alarms keep their own events and tags either way.
The modes:

    vae                    the VAE alarm alone; SPC still raises its own SPC events
    vae-or-spc             either alarm (an SPC rule sustained in `spc_hits` of `spc_span` rows)
    vae-or-sustained-spc   the VAE alarm, or an SPC alarm that has stayed active for `sustain`
                           rows in a row (a level shift or a stuck sensor, not a spike)

The export writes the mode into the bundle (`detector.fusion`): `vae` unless told otherwise
(export/calibrate.py says why), or with `--fusion auto` the rule of `choose_fusion` on the
held-out normal rows only (SPC joins the decision only when its alarm stays quiet there). A
site's `[detection] fusion` overrides it. A bundle without the field keeps the historic
`vae-or-spc`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FUSIONS = ("vae", "vae-or-spc", "vae-or-sustained-spc")
#: What a bundle exported before the field existed means: either alarm, as it always did.
LEGACY_FUSION = "vae-or-spc"
#: SPC joins the decision when its alarm is active on at most this share of held-out normal
#: rows: the VAE's threshold (quantile 0.999 x margin) allows about 0.1 % there, so an SPC
#: alarm that fires on more than 1 % of normal rows would dominate the fused false-alarm rate.
SPC_QUIET_SHARE = 0.01


class Fusion:
    """Fuse the two alarms row by row.

    Examples
    --------
    >>> f = Fusion("vae-or-sustained-spc", sustain=3)
    >>> [f.update(vae=False, spc=s) for s in (True, True, True, True, False)]
    [False, False, True, True, False]
    >>> Fusion("vae").update(vae=False, spc=True)
    False
    >>> Fusion("vae-or-spc").update(vae=False, spc=True)
    True
    """

    def __init__(self, mode: str, sustain: int = 1) -> None:
        if mode not in FUSIONS:
            raise ValueError(f"fusion {mode!r} is not one of {', '.join(FUSIONS)}")
        self.mode = mode
        self.sustain = max(1, sustain)
        self._spc_run = 0

    def reset(self) -> None:
        """Forget how long the SPC alarm has been active."""
        self._spc_run = 0

    def update(self, vae: bool, spc: bool) -> bool:
        """The fused decision for one row, given both alarms' states after that row."""
        self._spc_run = self._spc_run + 1 if spc else 0
        if self.mode == "vae":
            return vae
        if self.mode == "vae-or-spc":
            return vae or spc
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
    shares = {m: alarm_share(m, spc_active, sustain) for m in FUSIONS if m != "vae"}
    for mode in ("vae-or-spc", "vae-or-sustained-spc"):
        if shares[mode] <= SPC_QUIET_SHARE:
            return mode, shares
    return "vae", shares
