"""The drift-tolerant shift detector: its fit, its drift tolerance, bad input, the bundle field,
and its fusion modes in the live monitor."""

from __future__ import annotations

import doctest
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import agent.pipeline.detectors.shift as shift_module
import export.shift_fit as shift_fit_module
from agent.bundles.bundle import Bundle, load_bundle
from agent.bundles.manifest import ShiftParams, parse_manifest
from agent.core.tabular import read_csv
from agent.errors import BundleError
from agent.pipeline.build import build_line
from agent.pipeline.detectors.shift import ShiftDetector
from agent.pipeline.events.alarms import DebouncedAlarm, check_clear_ratio
from agent.pipeline.events.fusion import Fusion
from agent.pipeline.line import LineResult
from agent.pipeline.replay import DEFAULT_DETECTION, replay_results
from export.errors import ExportError
from export.shift_fit import fit_shift, shift_for_bundle

COLUMNS = ["a", "b", "c"]


def test_doctests_of_the_detector_and_its_fit() -> None:
    for module in (shift_module, shift_fit_module):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0


def _params(**over: object) -> ShiftParams:
    base: dict[str, object] = {
        "channels": 2,
        "watched": (0, 1),
        "fast": 0.2,
        "slow": 0.01,
        "scale": (1.0, 1.0),
        "threshold": 3.0,
        "max_freeze": 3600,
    }
    base.update(over)
    return ShiftParams(**base)  # type: ignore[arg-type]


def _alarms(det: ShiftDetector, rows: np.ndarray, clear_ratio: float = 1.0) -> np.ndarray:
    """The line's shift alarm after each row, the detector told of it as the line does."""
    alarm = DebouncedAlarm(raise_after=3, clear_after=3)
    out = []
    for r in rows:
        score = det.update(r)
        alarm.level(score.value, score.threshold, clear_ratio)
        det.observe_alarm(alarm.active)
        out.append(alarm.active)
    return np.array(out)


def test_a_slow_drift_is_tolerated_and_a_step_of_the_same_size_is_not() -> None:
    rng = np.random.default_rng(1)
    noise = rng.normal(scale=0.3, size=(2000, 2))
    ramp = noise + np.linspace(0, 20, 2000)[:, None] * np.array([1.0, 0.0])  # 20 scales
    step = noise.copy()
    step[1000:, 0] += 20.0
    assert not _alarms(ShiftDetector(_params()), ramp).any()
    alarms = _alarms(ShiftDetector(_params()), step)
    assert not alarms[:1000].any()
    assert alarms[1010:1600].all()  # the baseline froze before the step: the alarm holds


def test_the_alarm_clears_when_the_tag_comes_back() -> None:
    rows = np.zeros((700, 2))
    rows[200:400, 1] = 8.0
    alarms = _alarms(ShiftDetector(_params()), rows)
    assert alarms[210:400].all()
    assert not alarms[450:].any()


def test_the_alarm_clears_only_below_the_sites_hysteresis() -> None:
    """`[detection] clear_ratio` (0.8 by default) holds for the shift alarm as for the VAE's:
    a tag that comes back to 0.83 of the threshold still holds it; at 1.0 it would clear."""
    rows = np.zeros((900, 2))
    rows[200:400, 1] = 8.0
    rows[400:600, 1] = 2.9  # the baseline froze near 0.4: z = 2.5, 0.84 x the threshold of 3
    held = _alarms(ShiftDetector(_params()), rows, clear_ratio=0.8)
    plain = _alarms(ShiftDetector(_params()), rows, clear_ratio=1.0)
    assert held[210:600].all() and not held[650:].any()
    assert plain[210:400].all() and not plain[420:].any()
    with pytest.raises(ValueError, match="clear_ratio"):
        check_clear_ratio(0.0, "shift")


def test_a_permanent_change_ends_after_max_freeze_rows() -> None:
    rows = np.zeros((2000, 2))
    rows[100:, 0] = 8.0
    alarms = _alarms(ShiftDetector(_params(max_freeze=300)), rows)
    assert alarms[110:400].all()
    assert not alarms[1200:].any()  # the baseline accepted the new level


def test_a_cold_start_on_normal_rows_raises_no_alarm() -> None:
    # Without the running-mean warm-up the baseline was the first (noisy) reading for ~1/slow
    # rows, and a restart on a healthy line alarmed.
    rng = np.random.default_rng(11)
    params, _ = fit_shift([rng.normal(size=(2000, 2))], ["a", "b"])
    assert params is not None
    raised = 0
    for _ in range(20):
        alarms = _alarms(ShiftDetector(params), rng.normal(size=(300, 2)))
        raised += int(alarms.any())
    assert raised == 0, f"{raised} of 20 cold starts on normal rows raised the shift alarm"


def test_a_state_saved_before_the_warm_up_count_restores_as_warmed_up() -> None:
    a = ShiftDetector(_params())
    for _ in range(300):
        a.update(np.zeros(2))
    old = {k: v for k, v in a.state().items() if k != "seen"}
    b = ShiftDetector(_params())
    b.restore(json.loads(json.dumps(old)))
    step = np.array([5.0, 0.0])
    assert [a.update(step) for _ in range(20)] == [b.update(step) for _ in range(20)]
    with pytest.raises(ValueError, match="one count per watched channel"):
        b.restore({**a.state(), "seen": [1.0]})


def test_nan_keeps_a_channels_levels_and_an_unseen_channel_starts_late() -> None:
    det = ShiftDetector(_params())
    for _ in range(50):
        det.update(np.array([0.0, math.nan]))
    score = det.update(np.array([math.nan, math.nan]))
    assert math.isfinite(score.value) and not score.anomalous
    for _ in range(50):
        last = det.update(np.array([0.0, 5.0]))  # channel b's first reading: no jump
    assert last.value < 1.0 and not last.anomalous
    with pytest.raises(ValueError, match="expected"):
        det.update(np.zeros(3))


def test_state_is_json_and_restores_exactly() -> None:
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(400, 2))
    rows[150:, 1] += 6.0
    rows[120, 0] = math.nan
    a = ShiftDetector(_params())
    for r in rows[:200]:
        a.update(r)
    saved = json.dumps(a.state())
    b = ShiftDetector(_params())
    b.restore(json.loads(saved))
    assert [a.update(r) for r in rows[200:]] == [b.update(r) for r in rows[200:]]
    with pytest.raises(ValueError, match="one value per watched channel"):
        b.restore({**json.loads(saved), "fast": [0.0]})


@pytest.mark.parametrize(
    ("over", "problem"),
    [
        ({"watched": ()}, "at least one"),
        ({"watched": (0, 2), "scale": (1.0, 1.0)}, "channel indices"),
        ({"fast": 0.01, "slow": 0.2}, "slow < fast"),
        ({"scale": (1.0,)}, "one number per watched"),
        ({"scale": (1.0, 0.0)}, "positive finite"),
        ({"threshold": math.nan}, "threshold"),
        ({"max_freeze": 0}, "max_freeze"),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(over: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        _params(**over)


def test_params_round_trip_and_a_missing_field_is_named() -> None:
    p = _params()
    assert ShiftParams.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    raw = p.to_dict()
    del raw["scale"]
    with pytest.raises(ValueError, match=r"shift\.scale is missing"):
        ShiftParams.from_dict(raw)


def test_fit_skips_constant_and_excluded_channels_and_rejects_bad_rows() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(400, 3))
    rows[:, 1] = 3.5
    params, record = fit_shift([rows], COLUMNS, exclude=["c"])
    assert params is not None and params.watched == (0,)
    assert record["not_watched"] == {
        "b": "constant in training",
        "c": "excluded (drifts in normal operation)",
    }
    assert params.threshold > 0 and params.scale[0] > 0
    none, _ = fit_shift([rows], COLUMNS, exclude=["a", "c"])
    assert none is None
    bad = rows.copy()
    bad[10, 0] = math.nan
    with pytest.raises(ValueError, match="finite"):
        fit_shift([bad], COLUMNS)
    with pytest.raises(ValueError, match="too few rows"):
        fit_shift([rows[:3]], COLUMNS)


def test_a_shift_fusion_without_a_watchable_channel_is_an_export_error() -> None:
    rows = np.random.default_rng(0).normal(size=(400, 3))
    assert shift_for_bundle([[rows]], COLUMNS, COLUMNS, "vae") is None
    with pytest.raises(ExportError, match="--fusion vae-plus-shift: no channel"):
        shift_for_bundle([[rows]], COLUMNS, COLUMNS, "vae-plus-shift")
    with pytest.raises(ExportError, match="--fusion shift: too few rows"):
        shift_for_bundle([[rows[:2]]], COLUMNS, [], "shift")


def test_shift_fusion_modes() -> None:
    assert Fusion("shift").update(vae=True, spc=True, shift=False) is False
    assert Fusion("vae-or-shift").update(vae=False, spc=False, shift=True) is True
    plus = Fusion("vae-plus-shift", weight=0.3)
    plus_alarm = DebouncedAlarm(raise_after=1, clear_after=1)

    def summed(
        fusion: Fusion,
        alarm: DebouncedAlarm,
        vae: float | None,
        shift: float,
        clear_ratio: float = 1.0,
    ) -> bool:
        """One row as the line runs it: the summed score, its alarm, the decision."""
        score = fusion.summed(vae_ratio=vae, shift_ratio=shift)
        alarm.level(score.value, score.threshold, clear_ratio)
        return fusion.update(False, False, plus=alarm.active)

    # 0.3 x 2.0 + 0.7 x 0.6 = 1.02 > 1; a row with no VAE score keeps the last ratio
    assert summed(plus, plus_alarm, 2.0, 0.6) is True
    assert summed(plus, plus_alarm, None, 0.6) is True
    assert summed(plus, plus_alarm, math.nan, 0.5) is False
    with pytest.raises(ValueError, match="weight"):
        Fusion("vae-plus-shift", weight=1.5)
    # The summed score clears below the site's clear_ratio, and a reload can retune it.
    held, held_alarm = Fusion("vae-plus-shift"), DebouncedAlarm(raise_after=1, clear_after=1)
    assert summed(held, held_alarm, 1.0, 1.5, 0.8) is True
    assert summed(held, held_alarm, 1.0, 0.9, 0.8) is True  # 0.93 >= 0.8
    assert summed(held, held_alarm, 1.0, 0.7, 0.8) is False  # 0.79 < 0.8
    held_alarm.raise_after, held_alarm.clear_after = 2, 1
    assert summed(held, held_alarm, 1.0, 1.5) is False  # 1 of 2 rows
    assert summed(held, held_alarm, 1.0, 1.5) is True
    assert summed(held, held_alarm, 1.0, 0.9) is False  # 0.93 < 1.0
    with pytest.raises(ValueError, match="clear_ratio"):
        check_clear_ratio(1.2, "fusion")


def _manifest(bundle_dir: Path) -> dict[str, object]:
    raw: dict[str, object] = json.loads((bundle_dir / "manifest.json").read_text())
    return raw


def test_the_export_puts_the_shift_detector_in_the_bundle(bundle_dir: Path) -> None:
    shift = load_bundle(bundle_dir).manifest.shift
    assert shift is not None
    assert shift.channels == len(load_bundle(bundle_dir).manifest.channels)
    assert "held-out normal rows" in shift.method


def test_a_bad_or_missing_shift_field_is_a_bundle_error(bundle_dir: Path) -> None:
    raw = _manifest(bundle_dir)
    detector = dict(raw["detector"])  # type: ignore[call-overload]
    bad = {**detector["shift"], "threshold": -1}
    with pytest.raises(BundleError, match=r"'detector\.shift' is invalid: .*threshold"):
        parse_manifest({**raw, "detector": {**detector, "shift": bad}})
    with pytest.raises(BundleError, match=r"needs the field 'detector\.shift'"):
        parse_manifest({**raw, "detector": {**detector, "shift": None, "fusion": "shift"}})
    # A site override of the fusion on a bundle without the detector is refused too.
    old = replace(load_bundle(bundle_dir), manifest=replace(parse_manifest(raw), shift=None))
    detection = replace(DEFAULT_DETECTION, fusion="vae-or-shift")
    with pytest.raises(BundleError, match="needs a bundle with the shift detector"):
        build_line(old, detection, "replay")


def _stepped_replay(
    bundle_dir: Path, tmp_path: Path, mode: str, seed: int
) -> tuple[Bundle, list[LineResult]]:
    """A simulated historian with tag 1 stepped by 6 sd over rows 400-700, replayed live."""
    from agent.demo.run import write_historian

    bundle = load_bundle(bundle_dir)
    path = tmp_path / "line.csv"
    write_historian(path, rows=900, seed=seed)
    values = read_csv(path, bundle.manifest.channel_names).values.copy()
    values[400:700, 1] += 6.0 * values[:400, 1].std()
    return bundle, list(replay_results(bundle, values, replace(DEFAULT_DETECTION, fusion=mode)))


@pytest.mark.parametrize("mode", ["shift", "vae-or-shift", "vae-plus-shift"])
def test_the_live_monitor_fuses_the_shift_alarm(
    bundle_dir: Path, tmp_path: Path, mode: str
) -> None:
    _, results = _stepped_replay(bundle_dir, tmp_path, mode, seed=5)
    shift = np.array([r.shift_alarm_active for r in results])
    vae = np.array([r.anomaly_active for r in results])
    fused = np.array([r.alarm_active for r in results])
    assert shift[420:700].mean() > 0.9 and shift[:400].mean() < 0.05
    if mode == "shift":
        np.testing.assert_array_equal(fused, shift)
    elif mode == "vae-or-shift":
        np.testing.assert_array_equal(fused, vae | shift)
    else:
        assert fused[420:700].mean() > 0.9 and fused[:400].mean() < 0.05


@pytest.mark.parametrize("mode", ["shift", "vae-plus-shift"])
def test_in_a_shift_fusion_the_anomaly_events_follow_the_fused_decision(
    bundle_dir: Path, tmp_path: Path, mode: str
) -> None:
    from agent.types import EventKind, EventState

    bundle, results = _stepped_replay(bundle_dir, tmp_path, mode, seed=6)
    fused = [r.alarm_active for r in results]
    edges = [i for i in range(1, len(fused)) if fused[i] != fused[i - 1]]
    anomaly = [
        (i, e) for i, r in enumerate(results) for e in r.events if e.kind is EventKind.ANOMALY
    ]
    assert edges and [i for i, _ in anomaly] == edges
    states = [e.state for _, e in anomaly]
    assert states[0] is EventState.RAISED and states == [
        EventState.RAISED if k % 2 == 0 else EventState.CLEARED for k in range(len(states))
    ]
    raised = anomaly[0][1]
    assert raised.detector in ("vae", "shift") and mode in raised.message
    assert raised.tag == bundle.manifest.channel_names[1] or raised.detector == "vae"


def test_a_non_positive_shift_margin_is_refused_naming_the_option(tmp_path: Path) -> None:
    from export.pipeline import TrainOptions, validate

    with pytest.raises(ExportError, match="--shift-margin must be positive"):
        validate(TrainOptions(inputs=[tmp_path / "x.csv"], out=tmp_path / "b", shift_margin=0.0))
