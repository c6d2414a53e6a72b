"""`lineside spc` end to end in a subprocess: the JSON object, the PNG, and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parents[2] / "fixtures" / "spc"
PISTONS = str(FIXTURES / "pistonrings.csv")
TABLE_9_1 = str(FIXTURES / "montgomery_table_9_1.csv")
JUICE = str(FIXTURES / "orangejuice.csv")


def spc(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `lineside spc ARGS` as the console script would (PYTHONPATH is inherited)."""
    return subprocess.run(
        [sys.executable, "-m", "agent.cli.main", "spc", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def spc_json(*args: str) -> dict[str, Any]:
    done = spc(*args, "--json")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1  # one JSON object
    result: dict[str, Any] = json.loads(lines[0])
    return result


def beyond(plot: dict[str, Any]) -> list[int]:
    """Indices outside the printed limits, recomputed from the printed numbers."""
    n = len(plot["statistics"])
    lcl = plot["lcl"] if isinstance(plot["lcl"], list) else [plot["lcl"]] * n
    ucl = plot["ucl"] if isinstance(plot["ucl"], list) else [plot["ucl"]] * n
    return [
        i for i, s in enumerate(plot["statistics"]) if s is not None and (s > ucl[i] or s < lcl[i])
    ]


def test_xbar_r_prints_both_charts_and_the_phase2_signals() -> None:
    r = spc_json("--input", PISTONS, "--column", "diameter", "--chart", "xbar-r",
                 "--subgroup", "5", "--phase1", "25")  # fmt: skip
    assert r["chart"] == "xbar-r" and r["n"] == 5 and r["constants"] == "table"
    assert round(r["center"], 5) == 74.00118 and round(r["sigma"], 9) == 0.009785039
    assert (round(r["lcl"], 3), round(r["ucl"], 3)) == (73.988, 74.014)
    assert len(r["statistics"]) == 40 and r["phase1"] == {"points": 25, "rounds": 0, "dropped": []}
    assert set(r["range"]) >= {"center", "lcl", "ucl", "sigma", "statistics", "violations"}
    assert r["range"]["lcl"] == 0.0 and round(r["range"]["center"], 5) == 0.02276
    rule1 = sorted({v["index"] for v in r["violations"] if v["rule"] == "WE1"})
    assert rule1 == beyond(r) and rule1  # the Phase II subgroups above the UCL
    assert all(v["index"] >= 25 for v in r["violations"])  # the trial period is in control
    assert r["rules"] == ["WE1", "WE2", "WE3", "WE4"]


def test_xbar_s_prints_the_stdev_companion_with_exact_constants() -> None:
    r = spc_json("--input", PISTONS, "--column", "diameter", "--chart", "xbar-s",
                 "--subgroup", "5", "--phase1", "25", "--constants", "exact")  # fmt: skip
    assert round(r["stdev"]["center"], 9) == 0.009240037
    assert round(r["sigma"], 9) == 0.009829977
    assert "range" not in r


def test_cusum_prints_upper_and_lower_and_says_which_plot_signalled() -> None:
    r = spc_json("--input", TABLE_9_1, "--column", "x", "--chart", "cusum",
                 "--center", "10", "--sigma", "1", "--k", "0.5", "--h", "5")  # fmt: skip
    assert "statistics" not in r and len(r["upper"]) == len(r["lower"]) == 30
    assert (r["center"], r["k"], r["h"], r["lcl"], r["ucl"]) == (10.0, 0.5, 5.0, 0.0, 5.0)
    assert r["violations"] and all(v["rule"] == "WE1" for v in r["violations"])
    for v in r["violations"]:
        assert r[v["plot"]][v["index"]] > 5.0
    first = r["violations"][0]
    assert first["plot"] == "upper" and r["n_upper"][first["index"]] >= 1


def test_ewma_limits_vary_per_point() -> None:
    r = spc_json("--input", TABLE_9_1, "--column", "x", "--chart", "ewma", "--lambda", "0.1",
                 "--nsigmas", "2.7", "--center", "10", "--sigma", "1")  # fmt: skip
    assert isinstance(r["lcl"], list) and isinstance(r["ucl"], list) and len(r["ucl"]) == 30
    assert r["ucl"][0] < r["ucl"][-1]  # the exact limits widen towards the asymptote
    assert round(r["statistics"][0], 3) == 9.945
    assert sorted({v["index"] for v in r["violations"]}) == beyond(r)
    assert r["rules"] == ["WE1"] and r["lambda"] == 0.1


def test_p_chart_with_size_column_or_constant_size_and_phase1_rounds() -> None:
    by_column = spc_json("--input", JUICE, "--column", "D", "--chart", "p",
                         "--size-column", "size", "--rounds", "1")  # fmt: skip
    constant = spc_json("--input", JUICE, "--column", "D", "--chart", "p",
                        "--size", "50", "--rounds", "1")  # fmt: skip
    assert by_column["center"] == constant["center"] == pytest.approx(0.215)
    assert by_column["phase1"] == {"points": 30, "rounds": 1, "dropped": [14, 22]}
    assert round(by_column["ucl"], 7) == 0.3892972


def test_imr_with_nelson_rules_prints_the_moving_range() -> None:
    r = spc_json("--input", TABLE_9_1, "--column", "x", "--chart", "imr", "--rules", "nelson")
    assert r["rules"] == ["N1", "N2", "N3", "N4", "N5", "N6", "N7", "N8"]
    assert r["moving_range"]["statistics"][0] is None  # no moving range before point 2
    assert r["moving_range"]["lcl"] == 0.0


def test_semicolon_csv_with_decimal_commas(tmp_path: Path) -> None:
    path = tmp_path / "line.csv"
    path.write_text("timestamp;temp\n" + "".join(f"t{i};{20 + i % 3},5\n" for i in range(12)))
    r = spc_json("--input", str(path), "--column", "temp", "--chart", "imr")
    assert r["center"] == pytest.approx(21.5)
    assert r["statistics"][:3] == [20.5, 21.5, 22.5]


def test_png_draws_the_chart(tmp_path: Path) -> None:
    png = tmp_path / "chart.png"
    done = spc("--input", PISTONS, "--column", "diameter", "--chart", "xbar-r",
               "--subgroup", "5", "--png", str(png))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_png_without_matplotlib_names_the_extra(tmp_path: Path) -> None:
    args = ["spc", "--input", TABLE_9_1, "--column", "x", "--chart", "imr",
            "--png", str(tmp_path / "c.png")]  # fmt: skip
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"  # as if it were not installed
        f"from agent.cli.main import main; raise SystemExit(main({args!r}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "pip install lineside[plot]" in done.stderr
    assert not (tmp_path / "c.png").exists()


def test_constant_data_is_documented_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "flat.csv"
    path.write_text("x\n" + "4.2\n" * 20)
    for chart in ("imr", "ewma", "cusum"):
        r = spc_json("--input", str(path), "--column", "x", "--chart", chart)
        assert r["sigma"] == 0.0 and any("constant data" in w for w in r["warnings"])
        assert r["violations"] == []
    r = spc_json("--input", str(path), "--column", "x", "--chart", "xbar-r", "--subgroup", "4")
    assert r["lcl"] == r["ucl"] == r["center"] == pytest.approx(4.2)


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", PISTONS, "--column", "nope", "--chart", "imr"], "unknown column 'nope'"),
        (["--input", PISTONS, "--column", "diameter", "--chart", "xbar-r", "--subgroup", "1"],
         "2..25"),
        (["--input", PISTONS, "--column", "diameter", "--chart", "xbar-s", "--subgroup", "26"],
         "2..25"),
        (["--input", PISTONS, "--column", "diameter", "--chart", "xbar-r"], "needs --subgroup"),
        (["--input", PISTONS, "--column", "diameter", "--chart", "imr", "--subgroup", "5"],
         "--subgroup applies"),
        (["--input", PISTONS, "--column", "diameter", "--chart", "imr", "--phase1", "1"],
         "too few points"),
        (["--input", PISTONS, "--column", "diameter", "--chart", "imr", "--phase1", "999"],
         "more than the 200"),
        (["--input", PISTONS, "--column", "diameter", "--chart", "imr", "--rules", "N9"],
         "unknown rule 'N9'"),
        (["--input", JUICE, "--column", "D", "--chart", "p"], "--size-column"),
        (["--input", JUICE, "--column", "D", "--chart", "c", "--size", "50"], "no sample size"),
        (["--input", JUICE, "--column", "D", "--chart", "p", "--size", "10"], "defectives"),
        (["--input", "missing.csv", "--column", "x", "--chart", "imr"], "cannot read"),
        (["--input", TABLE_9_1, "--column", "x", "--chart", "ewma", "--lambda", "0"], "lambda"),
        (["--input", TABLE_9_1, "--column", "x", "--chart", "cusum", "--h", "-1"], "h must"),
        (["--input", TABLE_9_1, "--column", "x", "--chart", "imr", "--lsl", "5", "--usl", "1"],
         "below --usl"),
        (["--input", PISTONS, "--column", "diameter", "--chart", "xbar-r", "--subgroup", "5",
          "--sigma", "1"], "--center/--sigma apply to imr, ewma, cusum"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_one_line_naming_the_problem(args: list[str], message: str) -> None:
    done = spc(*args, "--json")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_too_few_points_and_nan_rows_name_the_problem(tmp_path: Path) -> None:
    done = spc("--input", write(tmp_path, "x\n1.0\n"), "--column", "x", "--chart", "imr")
    assert done.returncode == 2 and "too few points" in done.stderr
    done = spc("--input", write(tmp_path, "t,x\n0,1.0\n1,2.0\n\n2,3.0\n3,\n4,4.0\n"),
               "--column", "x", "--chart", "ewma")  # fmt: skip
    assert done.returncode == 2 and "column 'x' row 6 is empty (NaN)" in done.stderr
    done = spc("--input", write(tmp_path, "x\n1\n2\n3\n4\n5\n"), "--column", "x",
               "--chart", "xbar-r", "--subgroup", "3")  # fmt: skip
    assert done.returncode == 2 and "at least 2 subgroups" in done.stderr
    done = spc("--input", write(tmp_path, "d\n1\n2.5\n"), "--column", "d", "--chart", "c")
    assert done.returncode == 2 and "not a whole number" in done.stderr


def test_leftover_rows_are_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "x\n" + "".join(f"{v}\n" for v in [1, 2, 3, 2, 3, 1, 2, 5]))
    r = spc_json("--input", path, "--column", "x", "--chart", "xbar-r", "--subgroup", "3")
    assert len(r["statistics"]) == 2
    assert r["warnings"] == ["the last 2 row(s) do not fill a subgroup of 3 and are ignored"]


def test_spec_limits_add_capability_with_the_chart_sigma() -> None:
    r = spc_json("--input", PISTONS, "--column", "diameter", "--chart", "xbar-r",
                 "--subgroup", "5", "--phase1", "25", "--lsl", "73.95", "--usl", "74.05",
                 "--target", "74.02")  # fmt: skip
    cap = r["capability"]
    assert cap["n"] == 125  # the reference period's readings
    assert cap["sigma_within"] == pytest.approx(r["sigma"])
    assert cap["cp"] == pytest.approx(0.1 / (6 * r["sigma"]))
    assert cap["cpm"] is not None and cap["cpm"] < cap["cp"]  # the target is off-centre
    plain = spc_json("--input", PISTONS, "--column", "diameter", "--chart", "imr")
    assert "capability" not in plain
    done = spc("--input", JUICE, "--column", "D", "--chart", "c", "--usl", "30")
    assert done.returncode == 2 and "variables charts" in done.stderr
