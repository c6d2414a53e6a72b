"""Honest selection of the SKAB decision settings: choose on some folders, report on the rest.

`benchmarks/skab.py` replays every file once per (smoothing, clear_after) through the live
monitor and keeps, per row, the VAE alarm and the SPC alarm it held. Each candidate's fused
decision is then `agent.detectors.fusion.Fusion` over those two alarm series, the very object
the monitor runs, so a candidate costs no replay; the chosen one is replayed once more through
`lineside score`'s code and its `anomaly` column is what the headline reports (and the two are
checked to agree).

The rule is fixed before any figure is seen: on the selection folders (valve2 + other), the
highest F1 among candidates whose FAR there is at most `FAR_CAP` %; none under the cap, the
lowest FAR. valve1 (16 of 34 files) is never looked at while choosing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from agent.detectors.fusion import Fusion
from agent.evaluation import Evaluation

SELECT_FOLDERS = ("valve2", "other")
HELD_OUT_FOLDERS = ("valve1",)
FAR_CAP = 15.0
BoolArray = npt.NDArray[np.bool_]


@dataclass
class FileTruth:
    """One labelled file's test part: where it came from, its clock, its labels."""

    name: str
    folder: str
    times: npt.NDArray[np.float64]
    anomaly: npt.NDArray[np.float64]
    changepoint: npt.NDArray[np.float64]


@dataclass
class Alarms:
    """The two alarm series one replay of one file held on its test rows, and its bundle."""

    vae: BoolArray
    spc: BoolArray
    fusion: str  # what `--fusion auto` chose for the bundle (held-out normal rows)
    window: int


@dataclass(frozen=True)
class Candidate:
    """One decision setting: EWMA weight (export), clear_after (site), fusion (site or bundle)."""

    smoothing: float
    clear_after: int
    fusion: str  # "auto" = the export's held-out rule, per file

    def label(self) -> str:
        """Short text for the tables."""
        return f"smoothing {self.smoothing:g}, clear after {self.clear_after}, {self.fusion}"


def fused(alarms: Alarms, mode: str) -> BoolArray:
    """The monitor's fused decision over a replay's two alarm series."""
    fusion = Fusion(alarms.fusion if mode == "auto" else mode, sustain=alarms.window)
    return np.array(
        [fusion.update(bool(v), bool(s)) for v, s in zip(alarms.vae, alarms.spc, strict=True)]
    )


@dataclass
class Scored:
    """A candidate's evaluations on the selection folders, the held-out folder and all."""

    candidate: Candidate
    select: Evaluation = field(default_factory=Evaluation)
    held_out: Evaluation = field(default_factory=Evaluation)
    every: Evaluation = field(default_factory=Evaluation)


def evaluate(candidate: Candidate, truths: list[FileTruth], preds: dict[str, BoolArray]) -> Scored:
    """Score one candidate's per-file predictions on each part of the data set."""
    out = Scored(candidate)
    for t in truths:
        pred = preds[t.name].astype(float)
        part = out.select if t.folder in SELECT_FOLDERS else out.held_out
        for ev in (part, out.every):
            ev.add(t.times, t.anomaly, t.changepoint, pred)
    return out


def choose(scored: list[Scored]) -> Scored:
    """The rule above: best selection-folder F1 with FAR <= FAR_CAP, else the lowest FAR."""
    capped = [s for s in scored if s.select.matrix.far <= FAR_CAP]
    if capped:
        return max(capped, key=lambda s: s.select.matrix.f1)
    return min(scored, key=lambda s: s.select.matrix.far)


def rule_used(scored: list[Scored]) -> str:
    """Which branch of the rule picked the candidate."""
    if any(s.select.matrix.far <= FAR_CAP for s in scored):
        return f"best F1 among FAR <= {FAR_CAP:g} %"
    return f"no candidate reached FAR <= {FAR_CAP:g} %: the lowest FAR"


def print_selection(scored: list[Scored], chosen: Scored) -> None:
    """Every candidate's figures on the selection folders (and, for the record, the rest)."""
    print(
        f"\n## Selection: every candidate on {' + '.join(SELECT_FOLDERS)} "
        f"(rule: best F1 with FAR <= {FAR_CAP:g} %, else the lowest FAR; "
        f"here: {rule_used(scored)})\n"
    )
    print("| candidate | select F1 | FAR % | MAR % | held-out F1 | FAR % | MAR % |")
    print("|---|---|---|---|---|---|---|")
    for s in sorted(scored, key=lambda s: -s.select.matrix.f1):
        a, b = s.select.matrix, s.held_out.matrix
        mark = " **(chosen)**" if s is chosen else ""
        print(
            f"| {s.candidate.label()}{mark} | {a.f1:.3f} | {a.far:.2f} | {a.mar:.2f} "
            f"| {b.f1:.3f} | {b.far:.2f} | {b.mar:.2f} |"
        )
