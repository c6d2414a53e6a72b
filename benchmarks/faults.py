"""The labelled fault benchmark: the right tag and the right cause, measured on the demo line.

    python benchmarks/faults.py [--per-kind 30] [--normal-hours 8] [--seed 7] [--retrain]

The demo's simulated extrusion line (agent.demo.simulator) runs sample by sample through the
live pipeline objects (agent.pipeline.build.build_line, as `lineside score` replays a CSV), with
a model trained once through the export path on two hours of normal simulated operation (the
demo's bundle, cached in ~/.cache/lineside/faults-bench, or $LINESIDE_BENCH_CACHE). Faults of
every kind the simulator has (step, drift, stuck, variance, decouple, spikes, leak) hit random
tags with random sign, magnitude (in units of the tag's SPC sigma) and onset, one at a time,
with 3-6 minutes of normal operation between them. At the first alarm raised for a fault the
benchmark reads what the operator would get: the line's fused tag attribution (top 1 and top 3
against the faulty tag) and the explanation facts built from the same evidence the live
explainer keeps (agent.pipeline.evidence), whose first likely cause must be the catalogue
entry with the fault's signature (tag, direction, kind). The last two columns are the same
event read with the VAE's contributions alone: its top tag, and the first cause when the
facts rank the tags by it (what the agent did before the fused attribution).

The catalogue is the demo's (firmware-configs/failure-modes/demo-extruder.toml) plus one entry
per (tag, signature) it lacks, so every fault has exactly one right cause and the demo's
multi-symptom and generic (`up`, `down`) entries compete with it. A decoupling is only injected
on a tag that correlates strongly (|r| >= 0.7) with another in training: a tag that follows
nothing cannot stop following. A leak falls and levels off; its signature is `drift-down`, as
a drifting sensor's.

False alarms: every alarm raised (anomaly or SPC) in `--normal-hours` of normal operation of a
line with another seed, and those raised between faults (from a minute after the last fault's
alarms cleared until the next fault).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.bundles.bundle import Bundle, load_bundle
from agent.config import load_config
from agent.config.catalogue import Catalogue, FailureMode, Symptom, load_catalogue
from agent.demo.run import ensure_bundle
from agent.demo.simulator.process import SIGNAL_NAMES, ExtrusionLine, Fault, FaultKind
from agent.explain.facts import build_facts
from agent.paths import firmware_configs
from agent.pipeline.attribution import ranked
from agent.pipeline.build import build_line, drift_forecaster
from agent.pipeline.evidence import Evidence
from agent.pipeline.line import LineMonitor, LineResult
from agent.sinks.explainer import line_context
from agent.types import EventState, Sample, TagReading

LINE = "extruder-1"
SOURCE = "bench"
FAULT_S = 180
GRACE_S = 60
GAP_S = (180, 360)
SETTLE_S = 60  # the first minute after a fault's alarms cleared is not counted as normal
STRONG = 0.7
KINDS = (
    FaultKind.STEP, FaultKind.DRIFT, FaultKind.STUCK, FaultKind.VARIANCE,
    FaultKind.DECOUPLE, FaultKind.SPIKES, FaultKind.LEAK,
)  # fmt: skip
#: What each signature is called in a generated catalogue entry's cause.
SIGNATURE_WORDS = {
    "step-up": "offset up", "step-down": "offset down", "drift-up": "drifting up",
    "drift-down": "drifting down or leaking", "stuck": "frozen", "noisy": "noisy",
    "spikes": "spiking", "decoupled": "decoupled from its process",
}  # fmt: skip


@dataclass
class Trial:
    """One injected fault and what the line made of it."""

    kind: FaultKind
    tag: str
    magnitude: float
    signature: str
    onset: float
    end: float
    delay_s: float | None = None
    top: list[str] = field(default_factory=list)
    cause: str | None = None
    vae_top: str | None = None  # the VAE's contributions alone, for comparison
    vae_cause: str | None = None  # the first cause with the tags in the VAE's order
    expected_cause: str = ""


def cache_dir() -> Path:
    """Where the benchmark's model lives between runs."""
    root = os.environ.get("LINESIDE_BENCH_CACHE")
    if root:
        return Path(root)
    return (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lineside" / "faults-bench"
    )


def bench_catalogue(tags: list[str]) -> Catalogue:
    """The demo catalogue plus one entry for each (tag, signature) it has no exact entry for."""
    demo = load_catalogue(firmware_configs() / "failure-modes" / "demo-extruder.toml", set(tags))
    exact = {
        (m.symptoms[0].tag, m.symptoms[0].direction) for m in demo.modes if len(m.symptoms) == 1
    }
    extra = []
    for tag in tags:
        for signature, words in SIGNATURE_WORDS.items():
            if (tag, signature) not in exact:
                cause = f"{tag} {words}"
                extra.append(
                    FailureMode(
                        id=f"{tag}-{signature}",
                        symptoms=(Symptom(tag, signature),),
                        cause={"en": cause},
                        check={"en": f"check the {tag} transmitter"},
                    )
                )
    return Catalogue(modes=demo.modes + tuple(extra), deny=demo.deny)


def expected_cause(catalogue: Catalogue, tag: str, signature: str) -> str:
    """The id of the one entry whose only symptom is exactly this signature."""
    for mode in catalogue.modes:
        if mode.symptoms == (Symptom(tag, signature),):
            return mode.id
    raise LookupError(f"no catalogue entry for {tag} {signature}")


def plan_trials(bundle: Bundle, per_kind: int, rng: np.random.Generator) -> list[Trial]:
    """`per_kind` faults of every kind, shuffled, on random tags with random magnitudes."""
    m = bundle.manifest
    sigma = dict(zip(m.channel_names, m.spc.sigma, strict=True))
    corr = np.abs(np.asarray(m.training["correlation"], dtype=np.float64))
    np.fill_diagonal(corr, 0.0)
    coupled = [t for i, t in enumerate(m.channel_names) if corr[i].max() >= STRONG]
    trials = []
    for kind in KINDS:
        for _ in range(per_kind):
            tags = coupled if kind is FaultKind.DECOUPLE else list(SIGNAL_NAMES)
            tag = str(rng.choice(tags))
            sign = float(rng.choice((-1.0, 1.0)))
            size = float(rng.uniform(4.0, 8.0)) * sigma[tag]
            magnitude, signature = {
                FaultKind.STEP: (sign * size, "step-up" if sign > 0 else "step-down"),
                FaultKind.DRIFT: (
                    sign * size / float(rng.uniform(60.0, 180.0)),
                    "drift-up" if sign > 0 else "drift-down",
                ),
                FaultKind.STUCK: (0.0, "stuck"),
                FaultKind.VARIANCE: (float(rng.uniform(4.0, 8.0)), "noisy"),
                FaultKind.DECOUPLE: (sigma[tag], "decoupled"),
                FaultKind.SPIKES: (1.5 * size, "spikes"),
                FaultKind.LEAK: (-1.5 * size, "drift-down"),
            }[kind]
            trials.append(Trial(kind, tag, magnitude, signature, 0.0, 0.0))
    order = rng.permutation(len(trials))
    return [trials[i] for i in order]


def sample_of(line: ExtrusionLine) -> Sample:
    """The next row of the simulated line as one poll of its PLC."""
    row = line.step()
    return Sample(
        ts=line.t,
        source=SOURCE,
        readings={n: TagReading(float(v)) for n, v in zip(SIGNAL_NAMES, row, strict=True)},
    )


def monitor_of(bundle: Bundle) -> LineMonitor:
    """The live pipeline of the demo line with the demo site's `[detection]`."""
    site = load_config(firmware_configs() / "sites" / "demo-extruder.toml")
    monitor = build_line(bundle, site.detection, LINE)
    spec = {t.name: (t.lsl, t.usl) for t in site.tags.values()}
    monitor.forecaster = drift_forecaster(bundle.manifest, spec)
    return monitor


def raised(result: LineResult) -> Counter[str]:
    """The alarms this row raised, by kind (`anomaly`, `spc`)."""
    return Counter(e.kind.value for e in result.events if e.state is EventState.RAISED)


def run_faults(bundle: Bundle, trials: list[Trial], seed: int) -> tuple[Counter[str], float]:
    """Run every trial on one line; the false alarms between faults and the normal seconds."""
    monitor = monitor_of(bundle)
    catalogue = bench_catalogue(monitor.channels)
    ctx = line_context(bundle, LINE)
    evidence = Evidence(ctx.channels)
    line = ExtrusionLine(seed=seed)
    rng = np.random.default_rng(seed + 1)
    false_alarms: Counter[str] = Counter()
    normal_s = 0.0

    def step() -> LineResult:
        return monitor.process(sample_of(line))

    for _ in range(600):  # warm-up: fill the window, settle the baselines
        evidence.observe(step(), explain=False)
    for trial in trials:
        trial.expected_cause = expected_cause(catalogue, trial.tag, trial.signature)
        gap = int(rng.integers(*GAP_S))
        for k in range(gap):
            result = step()
            evidence.observe(result, explain=False)
            if k >= SETTLE_S:
                false_alarms += raised(result)
        normal_s += gap - SETTLE_S
        line.inject(Fault(trial.kind, trial.tag, trial.magnitude))
        trial.onset, trial.end = line.t, line.t + FAULT_S
        for k in range(FAULT_S + GRACE_S):
            if k == FAULT_S:
                line.clear()
            result = step()
            snapshots = evidence.observe(result, explain=trial.delay_s is None)
            if snapshots and trial.delay_s is None:
                trial.delay_s = result.ts - trial.onset
                shares = np.asarray(result.attribution)
                trial.top = [t for t, _ in ranked(monitor.channels, shares, 3)]
                facts = build_facts(snapshots[0], ctx, catalogue)
                trial.cause = facts.causes[0].id if facts.causes else None
                contributions = snapshots[0].contributions
                if contributions is not None:
                    trial.vae_top = monitor.channels[int(np.argmax(contributions))]
                alone = build_facts(replace(snapshots[0], attribution=None), ctx, catalogue)
                trial.vae_cause = alone.causes[0].id if alone.causes else None
        line.clear()
        while monitor.fused or any(monitor._active().values()):  # let the alarms clear
            evidence.observe(step(), explain=False)
    return false_alarms, normal_s


def run_normal(bundle: Bundle, hours: float, seed: int) -> Counter[str]:
    """Alarms raised in `hours` of normal operation (after a 10 min warm-up), by kind."""
    monitor = monitor_of(bundle)
    line = ExtrusionLine(seed=seed)
    for _ in range(600):
        monitor.process(sample_of(line))
    found: Counter[str] = Counter()
    for _ in range(int(hours * 3600)):
        found += raised(monitor.process(sample_of(line)))
    return found


def pct(hits: int, n: int) -> str:
    """A share as a percentage, or '-' of nothing."""
    return f"{100.0 * hits / n:5.1f} %" if n else "-"


def table(trials: list[Trial]) -> list[str]:
    """The per-kind table, then the overall row."""
    rows = [
        "| fault kind | faults | detected | median delay s | top-1 tag | top-3 tag | top-1 cause "
        "| VAE alone: top-1 tag | top-1 cause |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[str, list[Trial]] = defaultdict(list)
    for t in trials:
        groups[t.kind.value].append(t)
    for name, group in [*sorted(groups.items()), ("all", trials)]:
        found = [t for t in group if t.delay_s is not None]
        delay = (
            statistics.median(t.delay_s for t in found if t.delay_s is not None)
            if found
            else math.nan
        )
        rows.append(
            f"| {name} | {len(group)} | {pct(len(found), len(group))} | {delay:.0f} | "
            f"{pct(sum(t.top[:1] == [t.tag] for t in found), len(found))} | "
            f"{pct(sum(t.tag in t.top for t in found), len(found))} | "
            f"{pct(sum(t.cause == t.expected_cause for t in found), len(found))} | "
            f"{pct(sum(t.vae_top == t.tag for t in found), len(found))} | "
            f"{pct(sum(t.vae_cause == t.expected_cause for t in found), len(found))} |"
        )
    return rows


def main() -> int:
    """Train (once), run the faults and the normal line, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-kind", type=int, default=30)
    parser.add_argument("--normal-hours", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--retrain", action="store_true", help="train the model again")
    parser.add_argument("--misses", action="store_true", help="list each wrong tag or cause")
    args = parser.parse_args()
    state = cache_dir()
    state.mkdir(parents=True, exist_ok=True)
    if args.retrain:
        (state / "bundle" / "manifest.json").unlink(missing_ok=True)
    bundle = load_bundle(ensure_bundle(state, sys.stderr))
    rng = np.random.default_rng(args.seed)
    trials = plan_trials(bundle, args.per_kind, rng)
    between, normal_s = run_faults(bundle, trials, args.seed)
    normal = run_normal(bundle, args.normal_hours, args.seed + 100)
    print(
        f"model: {state / 'bundle'} (model_version {bundle.manifest.model_version}); "
        f"[detection] of the demo site (fusion {monitor_of(bundle).fusion.mode})"
    )
    print("\n".join(table(trials)))
    print()
    print("| normal operation | hours | anomaly alarms | SPC alarms | all per 8 h |")
    print("|---|---|---|---|---|")
    for name, hours, found in (
        ("uninterrupted", args.normal_hours, normal),
        ("between faults", normal_s / 3600.0, between),
    ):
        per_8h = 8.0 * sum(found.values()) / hours if hours else math.nan
        print(f"| {name} | {hours:.1f} | {found['anomaly']} | {found['spc']} | {per_8h:.2f} |")
    if args.misses:
        for t in trials:
            if t.delay_s is None:
                print(f"missed  {t.kind.value:<9} {t.tag:<19} {t.magnitude:+.3g}")
            elif t.top[:1] != [t.tag] or t.cause != t.expected_cause:
                print(
                    f"wrong   {t.kind.value:<9} {t.tag:<19} {t.magnitude:+.3g}  top {t.top}  "
                    f"cause {t.cause} (want {t.expected_cause})"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
