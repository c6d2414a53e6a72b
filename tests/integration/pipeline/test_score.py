"""`lineside score`: offline replay through the live monitor, and its bad-input handling."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from agent.bundles.bundle import load_bundle
from agent.cli.main import main
from agent.errors import DataError
from agent.pipeline.build import build_line
from agent.pipeline.events.fusion import SHIFT_FUSIONS
from agent.pipeline.replay import DEFAULT_DETECTION, SOURCE, replay_csv, replay_rows, seconds
from agent.types import Sample, TagReading


def _historian(bundle_dir: Path, path: Path, rows: int, sep: str = ",") -> list[str]:
    """Write a CSV of the bundle's channels from the simulator; return the channel names."""
    from agent.demo.run import write_historian

    write_historian(path, rows=rows, seed=5)
    if sep != ",":
        text = path.read_text(encoding="utf-8").replace(",", sep)
        path.write_text(text, encoding="utf-8")
    return load_bundle(bundle_dir).manifest.channel_names


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_one_output_row_per_input_row_with_every_column(bundle_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    channels = _historian(bundle_dir, source, rows=120, sep=";")
    out = tmp_path / "out.csv"
    assert (
        main(["score", "--bundle", str(bundle_dir), "--input", str(source), "--output", str(out)])
        == 0
    )
    rows = _read(out)
    assert len(rows) == 120
    expected = ["row", "time", "score", "vae_alarm", "spc_alarm", "anomaly"]
    expected += ["threshold", "shift_score", "shift_threshold", "shift_alarm"]
    assert list(rows[0]) == expected + [f"contrib:{c}" for c in channels]
    scored = [r for r in rows if r["score"] != ""]
    thresholds = {float(r["threshold"]) for r in scored}
    assert len(thresholds) == 1 and min(thresholds) > 0  # one model, one threshold
    assert all((r["threshold"] == "") == (r["score"] == "") for r in rows)
    datetime.fromisoformat(rows[0]["time"])  # ISO 8601
    window = load_bundle(bundle_dir).manifest.window
    # Before the first full window there is no score and no contribution, and no VAE alarm.
    assert all(r["score"] == "" and r["vae_alarm"] == "0" for r in rows[: window - 1])
    assert all(r[f"contrib:{channels[0]}"] == "" for r in rows[: window - 1])
    assert all(r["score"] != "" for r in rows[window - 1 :])
    assert rows[0]["row"] == "2" and rows[0]["time"] != ""
    fusion = load_bundle(bundle_dir).manifest.fusion
    # The shift fusions use the shift alarm, not in these columns (pipeline/test_shift.py).
    for r in rows if fusion not in SHIFT_FUSIONS else []:
        vae, spc = int(r["vae_alarm"]), int(r["spc_alarm"])
        assert int(r["anomaly"]) == (vae if fusion == "vae" else vae | spc) or (
            fusion == "vae-or-sustained-spc" and spc and not vae
        )
    assert {r["anomaly"] for r in rows} <= {"0", "1"}


def test_replay_equals_the_live_monitor_sample_by_sample(bundle_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    _historian(bundle_dir, source, rows=100)
    replay = replay_csv(bundle_dir, source)
    bundle = load_bundle(bundle_dir)
    from agent.core.tabular import read_csv

    values = read_csv(source, bundle.manifest.channel_names).values
    values[60:, 0] += 50.0  # a fault, so that alarms have something to do
    replay = list(replay_rows(bundle, values))
    live = build_line(bundle, DEFAULT_DETECTION, SOURCE)
    for i, row in enumerate(values):
        readings = {c: TagReading(float(v)) for c, v in zip(live.channels, row, strict=True)}
        result = live.process(Sample(ts=float(i), source="plc", readings=readings))
        score, vae_alarm, spc_alarm, _, fused = replay[i]
        expected = result.score.value if result.score is not None else None
        assert (None if np.isnan(score) else score) == expected
        assert (vae_alarm, spc_alarm) == (result.anomaly_active, result.spc_alarm_active)
        assert fused == result.alarm_active
    assert any(r[1] for r in replay), "the injected fault must raise the VAE alarm"


def test_fp32_and_int8_are_both_available(bundle_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    _historian(bundle_dir, source, rows=80)
    int8 = replay_csv(bundle_dir, source)
    fp32 = replay_csv(bundle_dir, source, replace(DEFAULT_DETECTION, precision="fp32"))
    both = ~np.isnan(int8.score)
    assert both.sum() > 0
    assert np.corrcoef(int8.score[both], fp32.score[both])[0, 1] > 0.95


def _with_nan_rows(source: Path, rows: list[int]) -> None:
    lines = source.read_text(encoding="utf-8").splitlines()
    for row in rows:
        cells = lines[row].split(",")
        cells[1] = "NaN"
        lines[row] = ",".join(cells)
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_one_nan_row_is_bridged_and_a_longer_gap_restarts_the_window(
    bundle_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    _historian(bundle_dir, source, rows=140)
    _with_nan_rows(source, [60, 100, 101])  # data rows 59, 99 and 100
    replay = replay_csv(bundle_dir, source)
    window = load_bundle(bundle_dir).manifest.window
    assert len(replay.lines) == 140
    # One bad row is bridged with the channel's last good value (agent.pipeline.line,
    # BRIDGE_ROWS): the window goes on and the row is scored.
    assert not np.isnan(replay.score[59 : 59 + 2]).any()
    # Two in a row are a gap: the window starts over, no score until `window` good rows again.
    gap = 100
    assert np.isnan(replay.score[gap : gap + window]).all()
    assert not np.isnan(replay.score[gap + window])


def test_missing_column_is_a_data_error_naming_it(bundle_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    channels = _historian(bundle_dir, source, rows=50)
    lines = source.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    drop = header.index(channels[2])
    kept = [",".join(c for i, c in enumerate(line.split(",")) if i != drop) for line in lines]
    source.write_text("\n".join(kept) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=channels[2]):
        replay_csv(bundle_dir, source)


def test_cli_exits_2_with_the_reason(
    bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("time,a\n1,2\n", encoding="utf-8")
    assert main(["score", "--bundle", str(bundle_dir), "--input", str(source)]) == 2
    err = capsys.readouterr().err
    assert "lineside score:" in err and "bad.csv" in err and "unknown column" in err


def test_not_a_number_names_file_column_and_row(bundle_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    channels = _historian(bundle_dir, source, rows=30)
    lines = source.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    cells = lines[10].split(",")
    cells[header.index(channels[0])] = "broken"
    lines[10] = ",".join(cells)
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{channels[0]}.*row 11"):
        replay_csv(bundle_dir, source)


def test_seconds_from_timestamps() -> None:
    assert seconds(["2020-03-09 10:34:33", "2020-03-09 10:34:35"]).tolist() == [0.0, 2.0]
    assert seconds(["a", "b", "c"]).tolist() == [0.0, 1.0, 2.0]
