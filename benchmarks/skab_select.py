"""SKAB: honest selection of the decision settings (choose on some folders, report on the rest)
and the tables `benchmarks/skab.py` prints.

`benchmarks/skab.py` replays every file once per (smoothing, clear_after) through the live
monitor and keeps, per row, the VAE alarm and the SPC alarm it held. Each candidate's fused
decision is then `agent.pipeline.events.fusion.Fusion` over those two alarm series, the very object
the monitor runs, so a candidate costs no replay; the chosen one is replayed once more through
`lineside score`'s code and its `anomaly` column is what the headline reports (and the two are
checked to agree).

The rule is fixed before any figure is seen: on the selection folders (valve2 + other), the
highest F1 among candidates whose FAR there is at most `FAR_CAP` %; none under the cap, the
lowest FAR. valve1 (16 of 34 files) is never looked at while choosing.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from agent.pipeline.events.alarms import DebouncedAlarm
from agent.pipeline.events.fusion import Fusion
from export.evaluation import Confusion, Evaluation

SELECT_FOLDERS = ("valve2", "other")
HELD_OUT_FOLDERS = ("valve1",)
FAR_CAP = 15.0
BoolArray = npt.NDArray[np.bool_]

PUBLISHED_OUTLIER = [
    ("Conv-AE", 0.78, 13.55, 28.02),
    ("MSET", 0.78, 39.73, 14.13),
    ("T-squared+Q (PCA)", 0.76, 26.62, 24.92),
    ("LSTM-AE", 0.74, 29.96, 25.92),
    ("T-squared", 0.66, 19.21, 42.60),
    ("LSTM-VAE", 0.56, 9.13, 55.03),
    ("Vanilla LSTM", 0.54, 12.54, 59.53),
    ("Vanilla AE", 0.39, 2.59, 75.15),
    ("Isolation forest", 0.29, 2.56, 82.89),
]
PUBLISHED_NAB = [
    ("MSCRED", 32.42, 16.53, 40.28, 55, 342),
    ("Isolation forest", 26.16, 19.50, 30.82, 76, 135),
    ("T-squared+Q (PCA)", 25.35, 14.51, 31.33, 72, 232),
    ("Conv-AE", 23.61, 21.54, 27.55, 82, 23),
    ("LSTM-AE", 23.51, 20.11, 25.91, 88, 69),
    ("T-squared", 19.54, 10.20, 24.31, 70, 106),
    ("MSET", 13.84, 10.22, 17.37, 96, 66),
]


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
    # The shift detector's alarm, and both scores over their thresholds on EVERY row of the
    # file from `offset` rows before the test part (vae-plus-shift carries state across).
    shift: BoolArray | None = None
    vae_ratio: npt.NDArray[np.float64] | None = None
    shift_ratio: npt.NDArray[np.float64] | None = None
    raise_after: int = 3
    clear_after: int = 3
    clear_ratio: float = 1.0
    offset: int = 0


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
    if alarms.shift is None or alarms.vae_ratio is None or alarms.shift_ratio is None:
        return np.array(
            [fusion.update(bool(v), bool(s)) for v, s in zip(alarms.vae, alarms.spc, strict=True)]
        )
    # The summed score's alarm, as the line's alarm table keeps it (agent.pipeline.line).
    summed = DebouncedAlarm(alarms.raise_after, alarms.clear_after)
    n, k = alarms.vae.size, alarms.offset
    vae = np.concatenate([np.zeros(k, dtype=bool), alarms.vae])
    spc = np.concatenate([np.zeros(k, dtype=bool), alarms.spc])
    shift = np.concatenate([np.zeros(k, dtype=bool), alarms.shift])
    rows = zip(vae, spc, shift, alarms.vae_ratio, alarms.shift_ratio, strict=True)
    out = []
    for v, s, h, a, b in rows:
        total = fusion.summed(float(a), float(b))
        summed.level(total.value, total.threshold, alarms.clear_ratio)
        out.append(fusion.update(bool(v), bool(s), bool(h), plus=summed.active))
    return np.array(out[k:] if n else [], dtype=bool)


@dataclass
class Scored:
    """A candidate's evaluations on the selection folders, the held-out folder and all."""

    candidate: Candidate
    select: Evaluation = field(default_factory=Evaluation)
    held_out: Evaluation = field(default_factory=Evaluation)
    every: Evaluation = field(default_factory=Evaluation)


def evaluate(
    candidate: Candidate,
    truths: list[FileTruth],
    preds: dict[str, BoolArray],
    select_folders: tuple[str, ...] = SELECT_FOLDERS,
) -> Scored:
    """Score one candidate's per-file predictions on each part of the data set."""
    out = Scored(candidate)
    for t in truths:
        pred = preds[t.name].astype(float)
        part = out.select if t.folder in select_folders else out.held_out
        for ev in (part, out.every):
            ev.add(t.times, t.anomaly, t.changepoint, pred)
    return out


def choose(scored: list[Scored]) -> Scored:
    """The rule above: best selection-folder F1 with FAR <= FAR_CAP, else the lowest FAR."""
    capped = [s for s in scored if s.select.matrix.far <= FAR_CAP]
    if capped:
        return max(capped, key=lambda s: s.select.matrix.f1)
    return min(scored, key=lambda s: s.select.matrix.far)


@dataclass
class Fold:
    """One round of leave-one-folder-out: the folder held out, what the rule chose without it."""

    folder: str
    chosen_on: tuple[str, ...]
    chosen: Candidate
    held_out: Evaluation


def leave_one_folder_out(
    truths: list[FileTruth], preds: dict[Candidate, dict[str, BoolArray]]
) -> tuple[list[Fold], Evaluation]:
    """The selection rule run once per folder, choosing on the other folders' labels only;
    each fold's chosen candidate is scored on its own held-out folder, and the held-out
    predictions of all folds are pooled into one confusion matrix.

    Examples
    --------
    >>> t = lambda n, f, a: FileTruth(n, f, np.arange(4.0), np.array(a, float), np.zeros(4))
    >>> truths = [t("a", "x", [0, 0, 1, 1]), t("b", "y", [0, 0, 1, 1])]
    >>> good, late = Candidate(1.0, 3, "vae"), Candidate(1.0, 3, "shift")
    >>> preds = {good: {"a": np.array([0, 0, 1, 1], bool), "b": np.array([0, 0, 1, 0], bool)},
    ...          late: {"a": np.array([0, 0, 0, 1], bool), "b": np.array([0, 0, 1, 1], bool)}}
    >>> folds, pooled = leave_one_folder_out(truths, preds)
    >>> [(f.folder, f.chosen.fusion) for f in folds]
    [('x', 'shift'), ('y', 'vae')]
    >>> pooled.matrix.tp, pooled.matrix.fn
    (2, 2)
    """
    folders = tuple(dict.fromkeys(t.folder for t in truths))
    folds, pooled = [], Evaluation()
    for folder in folders:
        others = tuple(f for f in folders if f != folder)
        scored = [evaluate(c, truths, p, others) for c, p in preds.items()]
        best = choose(scored)
        folds.append(Fold(folder, others, best.candidate, best.held_out))
        for t in truths:
            if t.folder == folder:
                pred = preds[best.candidate][t.name].astype(float)
                pooled.add(t.times, t.anomaly, t.changepoint, pred)
    return folds, pooled


def print_folds(folds: list[Fold], pooled: Evaluation) -> None:
    """The leave-one-folder-out table: how well the selection rule itself generalises."""
    print(
        "\n## Leave one folder out (the selection rule, choosing on two folders' labels, "
        "scored on the third; not the headline)\n"
    )
    print("| held out | chosen on | chosen | F1 | FAR % | MAR % |")
    print("|---|---|---|---|---|---|")
    for f in folds:
        m = f.held_out.matrix
        print(
            f"| {f.folder} | {' + '.join(f.chosen_on)} | {f.chosen.label()} "
            f"| {m.f1:.3f} | {m.far:.2f} | {m.mar:.2f} |"
        )
    m = pooled.matrix
    figures = f"{m.f1:.3f} | {m.far:.2f} | {m.mar:.2f}"
    print(f"| **pooled** (each folder by its own fold) | | | {figures} |")


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


@dataclass
class Row:
    """One of our rows of the table: an evaluation and the cost of its models."""

    name: str
    evaluation: Evaluation = field(default_factory=Evaluation)
    train_s: list[float] = field(default_factory=list)
    size_bytes: list[int] = field(default_factory=list)
    select: Evaluation = field(default_factory=Evaluation)
    held_out: Evaluation = field(default_factory=Evaluation)


def _cost(row: Row) -> tuple[str, str]:
    if not row.train_s:
        return "-", "-"
    trained = [t for t in row.train_s if t > 0]
    train = f"{statistics.median(trained):.1f}" if trained else "cached"
    return train, f"{statistics.median(row.size_bytes) / 1024:.1f}"


def print_protocol(chosen: Candidate, score: str = "mean") -> None:
    """Which protocol chose which setting."""
    print("\n## What chose what\n")
    print(
        "- window 16, dense encoder, score mean, beta 0.1, `--relative Temperature,"
        "Thermocouple`, 60 epochs: the first round, on the aggregate of all 34 test parts "
        "(test labels, in aggregate; not re-chosen here)"
    )
    if score.endswith("+latent"):
        print(
            f"- `--score {score}` (the latent term, weight 1, export/latent.py): chosen on "
            f"{' + '.join(SELECT_FOLDERS)} only, by F1 averaged over training seeds 0-4 "
            "(0.789 -> 0.815 there); not re-chosen here"
        )
    print("- threshold: quantile 0.999 of held-out normal scores x 1.25, fixed a priori")
    print(
        "- shift detector (agent.pipeline.detectors.shift): fast 0.2, slow 0.005, "
        "threshold the largest "
        "held-out normal score x 1.25, Temperature and Thermocouple (the `--relative` channels) "
        "not watched; the vae-plus-shift weight 0.3: a prototype grid on the labels of "
        f"{' + '.join(SELECT_FOLDERS)} only"
    )
    print(
        "- fusion `auto` (a candidate): per file by the export's rule, on the held-out normal "
        "rows of its 400 training rows, no labels; the export's default fusion "
        "`vae-plus-shift` was chosen from this table's selection folders (while the shift "
        "and summed alarms still cleared at 1.0 x threshold; it keeps the best F1 there)"
    )
    print(
        f"- smoothing, clear_after, fusion override: on the labels of "
        f"{' + '.join(SELECT_FOLDERS)} only (best F1 with FAR <= {FAR_CAP:g} %); "
        f"{' + '.join(HELD_OUT_FOLDERS)} held out -> chose {chosen.label()}"
    )


def print_tables(rows: list[Row], ones: Evaluation, chosen: Candidate, score: str = "mean") -> None:
    """Both leaderboards, ours first, in the SKAB README's layout, then the held-out split."""
    print_protocol(chosen, score)
    print("\n## Outlier detection (one confusion matrix over the 34 test parts)\n")
    print("| algorithm | F1 | FAR % | MAR % | train s/file (median) | model KiB |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        c: Confusion = row.evaluation.matrix
        train, size = _cost(row)
        figures = f"{c.f1:.3f} | {c.far:.2f} | {c.mar:.2f}"
        print(f"| Lineside {row.name} | {figures} | {train} | {size} |")
    for name, f1, far, mar in PUBLISHED_OUTLIER:
        print(f"| {name} | {f1:.2f} | {far:.2f} | {mar:.2f} | | |")
    c = ones.matrix
    print(f"| (check) flag every point | {c.f1:.3f} | {c.far:.2f} | {c.mar:.2f} | | |")

    held, sel = " + ".join(HELD_OUT_FOLDERS), " + ".join(SELECT_FOLDERS)
    print(f"\n## The same rows on the held-out folder ({held}) and the selection folders\n")
    print(f"| algorithm | {held} F1 | FAR % | MAR % | {sel} F1 | FAR % | MAR % |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        h, s = row.held_out.matrix, row.select.matrix
        print(
            f"| Lineside {row.name} | {h.f1:.3f} | {h.far:.2f} | {h.mar:.2f} "
            f"| {s.f1:.3f} | {s.far:.2f} | {s.mar:.2f} |"
        )

    print("\n## Changepoint detection (NAB, 60 s right window)\n")
    print("| algorithm | standard | LowFP | LowFN | missed CPs | FPs |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        nab = row.evaluation.nab()
        s_, lfp, lfn = nab["standard"], nab["LowFP"], nab["LowFN"]
        print(
            f"| Lineside {row.name} | {s_.score:.2f} | {lfp.score:.2f} | {lfn.score:.2f} "
            f"| {s_.missed} | {s_.false_positives} |"
        )
    for name, std, low_fp, low_fn, missed, fps in PUBLISHED_NAB:
        print(f"| {name} | {std:.2f} | {low_fp:.2f} | {low_fn:.2f} | {missed} | {fps} |")
    m = ones.matrix
    print(
        f"\ntest rows {m.tp + m.fp + m.tn + m.fn}, anomalous {m.tp + m.fn}, "
        f"changepoints {ones.nab()['standard'].missed} (all missed by the flag-everything check)"
    )
