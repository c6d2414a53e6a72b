"""`lineside-export train` leaves out the columns that are not process signals, and refuses SPC
limits that alarm on normal rows: a historian CSV with a setpoint, a coil and a constant
beside three process signals, as a real PLC recording has them."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from agent.bundles.bundle import load_bundle
from export.cli import main
from export.errors import ExportError
from export.pipeline import TrainOptions, run_train
from tests.export_data import normal_rows, write_csv

ROWS = 900
WINDOW = 24  # 3 channels x 24: int8 quantisation needs 64 inputs or more
PROCESS = ["flow", "pressure", "temp"]
OTHERS = ["speed_sp", "pump_on", "mode"]  # a setpoint, a coil, a constant


def mixed_rows(rows: int = ROWS, seed: int = 11) -> np.ndarray:
    """Three process signals, then a setpoint moved twice, a coil and a constant."""
    rng = np.random.default_rng(seed)
    setpoint = np.where(np.arange(rows) < rows // 3, 120.0, 125.0)
    setpoint[2 * rows // 3 :] = 130.0
    coil = (rng.random(rows) < 0.3).astype(float)
    return np.column_stack([normal_rows(rows, seed)[:, :3], setpoint, coil, np.full(rows, 3.0)])


@pytest.fixture
def mixed_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "line.csv", mixed_rows(), columns=[*PROCESS, *OTHERS])


def _options(csv: Path, out: Path, **kw: object) -> TrainOptions:
    base = TrainOptions(inputs=[csv], out=out, window=WINDOW, epochs=3, seed=1, quiet=False)
    return replace(base, **kw)  # type: ignore[arg-type]


def _no_bundle_beside(csv: Path) -> None:
    """Nothing under the CSV's folder but the inputs: no --out, no staging directory."""
    assert sorted(p.suffix for p in csv.parent.iterdir()) in ([".csv"], [".csv", ".toml"])


def test_only_the_process_columns_are_modelled_and_each_other_is_explained(
    mixed_csv: Path,
) -> None:
    lines: list[str] = []
    outcome = run_train(_options(mixed_csv, mixed_csv.parent / "bundle"), log=lines.append)
    assert load_bundle(outcome.bundle.path).manifest.channel_names == PROCESS
    train_rows = round(ROWS * 0.7)
    assert "left out speed_sp: setpoint, changes on 0.3 % of rows, 3 levels" in lines
    assert f"left out pump_on: binary, 2 distinct values (0, 1) in {train_rows} rows" in lines
    assert "left out mode: constant, never changes (3)" in lines
    assert any("--keep-all-columns" in line for line in lines)
    left_out = outcome.manifest["training"]["columns_left_out"]
    assert {c: e["kind"] for c, e in left_out.items()} == {
        "speed_sp": "setpoint",
        "pump_on": "binary",
        "mode": "constant",
    }
    assert left_out["pump_on"]["reason"].startswith("2 distinct values")
    assert "left out  speed_sp (setpoint), pump_on (binary), mode (constant)" in outcome.summary


def test_a_column_named_in_columns_is_kept_with_a_warning(mixed_csv: Path) -> None:
    lines: list[str] = []
    columns = [*PROCESS, "pump_on"]
    outcome = run_train(
        _options(mixed_csv, mixed_csv.parent / "bundle", columns=columns), log=lines.append
    )
    assert outcome.bundle.manifest.channel_names == columns
    assert any(
        line.startswith("warning: pump_on looks binary") and "named in --columns" in line
        for line in lines
    )
    assert outcome.manifest["training"]["columns_left_out"] == {}


def test_keep_all_columns_trips_the_spc_share_refusal_naming_the_culprits(
    mixed_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = mixed_csv.parent / "bundle"
    status = main(
        ["train", "--input", str(mixed_csv), "--out", str(out), "--window", str(WINDOW),
         "--epochs", "3", "--keep-all-columns", "--quiet"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("lineside-export: error: the SPC alarm holds on ")
    assert "of 270 held-out normal rows (bound 5 %)" in err
    # the constant and the setpoint hold it (flatline); the process signals do not
    culprits = err.split("Channels holding it: ")[1].split(". ")[0]
    assert re.search(r"mode on \d+\.\d % of rows \(flatline on \d+\.\d %\)", culprits)
    assert "speed_sp" in culprits
    assert not any(name in culprits for name in PROCESS)
    assert "--allow-spc-alarms" in err and "--max-spc-alarm-share" in err
    assert not out.exists()
    _no_bundle_beside(mixed_csv)


def test_allow_spc_alarms_exports_with_a_warning(mixed_csv: Path) -> None:
    lines: list[str] = []
    options = _options(
        mixed_csv, mixed_csv.parent / "bundle", keep_all_columns=True, allow_spc_alarms=True
    )
    outcome = run_train(options, log=lines.append)
    assert outcome.bundle.manifest.channel_names == [*PROCESS, *OTHERS]
    assert any(
        line.startswith("warning: the SPC alarm holds on") and "exporting anyway" in line
        for line in lines
    )


def test_a_higher_bound_lets_the_same_columns_through(mixed_csv: Path) -> None:
    # only the setpoint kept beside the process signals: it holds the alarm on about a third of
    # the held-out rows (flatline), under a bound of 1 and over the default of 5 %
    columns = [*PROCESS, "speed_sp"]
    with pytest.raises(ExportError, match=r"speed_sp on \d+\.\d % of rows \("):
        run_train(_options(mixed_csv, mixed_csv.parent / "a", columns=columns, quiet=True))
    outcome = run_train(
        _options(
            mixed_csv, mixed_csv.parent / "b", columns=columns, quiet=True, max_spc_alarm_share=1.0
        )
    )
    assert outcome.bundle.manifest.channel_names == columns


def test_a_csv_of_nothing_but_excluded_columns_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = write_csv(tmp_path / "status.csv", mixed_rows()[:, 3:], columns=OTHERS)
    out = tmp_path / "bundle"
    status = main(["train", "--input", str(csv), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2
    assert "every column is left out, nothing is left to model" in err
    assert "speed_sp: setpoint, changes on" in err
    assert "pump_on: binary, 2 distinct values (0, 1)" in err
    assert "mode: constant, never changes (3)" in err
    assert "--columns" in err
    assert not out.exists()
    _no_bundle_beside(csv)


def _tag_map(path: Path, extra: dict[str, str]) -> Path:
    names = [*PROCESS, *OTHERS]
    blocks = [
        f'[[tag]]\nname = "{n}"\naddress = {2 * i}\ntype = "float32"\nunit = "u{i}"\n'
        f"{extra.get(n, '')}\n"
        for i, n in enumerate(names)
    ]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def test_the_tag_map_leaves_out_tags_kept_out_of_detection(mixed_csv: Path) -> None:
    tag_map = _tag_map(
        mixed_csv.parent / "tags.toml",
        {"pressure": "detect = false", "speed_sp": 'role = "setpoint"\ndetect = true'},
    )
    lines: list[str] = []
    outcome = run_train(
        _options(mixed_csv, mixed_csv.parent / "bundle", tag_map=tag_map, allow_spc_alarms=True),
        log=lines.append,
    )
    manifest = outcome.bundle.manifest
    assert manifest.channel_names == ["flow", "temp", "speed_sp"]
    assert [c.unit for c in manifest.channels] == ["u0", "u2", "u3"]
    assert "left out pressure: the tag map sets detect = false" in lines
    assert any(
        line.startswith("warning: speed_sp looks setpoint")
        and "the tag map sets detect = true" in line
        for line in lines
    )
    assert outcome.manifest["training"]["columns_left_out"]["pressure"]["kind"] == "tag map"


def test_naming_a_tag_kept_out_of_detection_in_columns_is_refused(mixed_csv: Path) -> None:
    tag_map = _tag_map(mixed_csv.parent / "tags.toml", {"speed_sp": 'role = "setpoint"'})
    options = _options(
        mixed_csv, mixed_csv.parent / "bundle", tag_map=tag_map, columns=["flow", "speed_sp"]
    )
    with pytest.raises(ExportError) as info:
        run_train(options)
    message = str(info.value)
    assert "--columns names speed_sp, which the tag map keeps out of detection" in message
    assert "role = 'setpoint'" in message and "set detect = true" in message
    _no_bundle_beside(mixed_csv)


def test_the_spc_share_bound_must_be_a_share(mixed_csv: Path) -> None:
    with pytest.raises(ExportError, match=r"--max-spc-alarm-share must be a share in \[0, 1\]"):
        run_train(_options(mixed_csv, mixed_csv.parent / "bundle", max_spc_alarm_share=5.0))
