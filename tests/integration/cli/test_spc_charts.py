"""`lineside spc` pictures and text: labelled limits, numbered rule markers, capability, time.

The charts are drawn to SVG (text stays text), parsed, and compared with the JSON object of the
same run. The qcc comparison uses the R package's own example: `pistonrings`, the first 25
subgroups as the trial period, spec limits 73.95..74.05. R cannot run here, so the expected
numbers are those qcc's vignette prints for `qcc(diameter[1:25, ], type = "xbar",
newdata = diameter[26:40, ])` and `process.capability(q, spec.limits = c(73.95, 74.05))`:
CL 74.00118, LCL 73.98805, UCL 74.01431 (R chart: CL 0.02276, UCL 0.04812); StdDev
0.009785039;
Cp 1.703 [1.491, 1.915], Cp_k 1.663 [1.448, 1.878], Cpm 1.691 [1.480, 1.902]; and qcc's
picture flags the Phase II subgroups 37, 38, 39 (1-based) beyond the UCL.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

FIXTURES = Path(__file__).parents[2] / "fixtures" / "spc"
PISTONS = str(FIXTURES / "pistonrings.csv")
TABLE_9_1 = str(FIXTURES / "montgomery_table_9_1.csv")
JUICE = str(FIXTURES / "orangejuice.csv")
SVG = "{http://www.w3.org/2000/svg}"
QCC_XBAR = ["--input", PISTONS, "--column", "diameter", "--chart", "xbar-r", "--subgroup", "5",
            "--phase1", "25", "--lsl", "73.95", "--usl", "74.05", "--target", "74"]  # fmt: skip


def spc(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `lineside spc ARGS` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "agent.cli.main", "spc", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def drawn(args: list[str], svg: Path) -> tuple[dict[str, Any], ET.Element]:
    """The JSON of one run and the parsed SVG of the same arguments."""
    done = spc(*args, "--json", "--png", str(svg))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), ET.parse(svg).getroot()


def texts(root: ET.Element, gid: str) -> list[str]:
    """The text of every element with this id (one per panel)."""
    return ["".join(e.itertext()).strip() for e in root.iter() if e.get("id") == gid]


def markers(root: ET.Element) -> Counter[str]:
    """Points marked per rule, counted from the drawn markers."""
    out: Counter[str] = Counter()
    for e in root.iter():
        gid = e.get("id", "")
        if gid.startswith("rule-") and gid != "rule-label":
            # matplotlib writes each marker as a <use> of one shape, or as its own <path>
            shapes = [c for c in e.iter() if c.tag in (f"{SVG}use", f"{SVG}path")]
            out[gid[5:]] += sum(1 for c in shapes if c.tag == f"{SVG}use") or len(shapes)
    return out


def marked_points(plot: dict[str, Any]) -> Counter[str]:
    """Distinct points per rule in the JSON."""
    return Counter(rule for rule, _ in {(v["rule"], v["index"]) for v in plot["violations"]})


def test_xbar_r_matches_qcc_pistonrings_limits_and_capability(tmp_path: Path) -> None:
    r, root = drawn(QCC_XBAR, tmp_path / "qcc.svg")
    # qcc draws CL ± 3·σ/√n; the printed A2 = 0.577 (3/(d2·√5) = 0.5768) moves the limits by
    # under 1e-5, so they agree with qcc's five decimals to one unit in the last place
    assert round(r["center"], 5) == 74.00118 and round(r["sigma"], 9) == 0.009785039
    assert r["lcl"] == pytest.approx(73.98805, abs=1.5e-5)
    assert r["ucl"] == pytest.approx(74.01431, abs=1.5e-5)
    assert r["range"]["center"] == pytest.approx(0.02276, abs=1e-5)
    assert r["range"]["ucl"] == pytest.approx(0.04812, abs=1e-5)
    beyond_ucl = sorted({v["index"] + 1 for v in r["violations"] if v["rule"] == "WE1"})
    assert beyond_ucl == [37, 38, 39]
    cap = r["capability"]
    expected = {"cp": (1.703, 1.491, 1.915), "cpk": (1.663, 1.448, 1.878),
                "cpm": (1.691, 1.480, 1.902)}  # fmt: skip
    for name, (value, low, high) in expected.items():
        got = (round(cap[name], 3), *(round(v, 3) for v in cap["intervals"][name]))
        assert got == (value, low, high), name
    assert cap["sigma_used"]["cp"] == "within" and cap["sigma_used"]["ppk"] == "overall"
    # the picture carries the same numbers
    assert texts(root, "limit-ucl")[0] == f"UCL = {r['ucl']:.6g}" == "UCL = 74.0143"
    assert texts(root, "limit-lcl")[0] == "LCL = 73.988"
    assert texts(root, "limit-center") == [f"CL = {r['center']:.6g}", "CL = 0.02276"]
    table = texts(root, "capability-table")[0]
    assert "cpk    1.663  1.448..1.878  within" in table and "ppk" in table
    assert {t.split(" = ")[0] for t in texts(root, "spec-LSL") + texts(root, "spec-USL")} == {
        "LSL", "USL"}  # fmt: skip
    assert markers(root) == marked_points(r) and markers(root)["WE1"] == 3


def test_the_numbers_under_each_point_are_its_rules(tmp_path: Path) -> None:
    r, root = drawn(QCC_XBAR, tmp_path / "q.svg")
    by_point: dict[int, set[str]] = {}
    for v in r["violations"]:
        by_point.setdefault(v["index"], set()).add(v["rule"].lstrip("NWE"))
    expected = sorted(",".join(sorted(rules)) for rules in by_point.values())
    assert sorted(texts(root, "rule-label")) == expected


@pytest.mark.parametrize(
    "args",
    [
        ["--input", TABLE_9_1, "--column", "x", "--chart", "imr", "--rules", "nelson"],
        ["--input", TABLE_9_1, "--column", "x", "--chart", "residual"],
        ["--input", PISTONS, "--column", "diameter", "--chart", "xbar-s", "--subgroup", "5"],
        ["--input", TABLE_9_1, "--column", "x", "--chart", "ewma", "--center", "10",
         "--sigma", "1", "--lambda", "0.1", "--nsigmas", "2.7"],
        ["--input", TABLE_9_1, "--column", "x", "--chart", "cusum", "--center", "10",
         "--sigma", "1"],
        ["--input", JUICE, "--column", "D", "--chart", "p", "--size-column", "size"],
        ["--input", JUICE, "--column", "D", "--chart", "np", "--size", "50"],
        ["--input", JUICE, "--column", "D", "--chart", "c"],
        ["--input", JUICE, "--column", "D", "--chart", "u", "--size", "50"],
    ],
)  # fmt: skip
def test_every_chart_kind_draws_labelled_limits_and_counted_markers(
    args: list[str], tmp_path: Path
) -> None:
    r, root = drawn(args, tmp_path / "c.svg")
    ucl = texts(root, "limit-ucl")
    assert ucl and all(t.startswith(("UCL = ", "H = ")) for t in ucl)
    if r["chart"] == "cusum":
        assert ucl[0] == f"H = {r['h']:.6g}"
        assert sum(markers(root).values()) == len(
            {(v["index"], v["plot"]) for v in r["violations"]}
        )
        assert r["violations"], "Montgomery's table 9.1 signals on the upper CUSUM"
    else:
        last = r["ucl"][-1] if isinstance(r["ucl"], list) else r["ucl"]
        assert ucl[0].startswith(f"UCL = {last:.6g}")
        assert (ucl[0].endswith("(varies)")) == isinstance(r["ucl"], list)
        companion = next((r[k] for k in ("range", "stdev", "moving_range") if k in r), None)
        expected = marked_points(r) + (marked_points(companion) if companion else Counter())
        assert markers(root) == expected


def test_time_on_the_x_axis_when_the_csv_has_one(tmp_path: Path) -> None:
    values = np.random.default_rng(3).normal(20.0, 1.0, 60)
    values[45] = 30.0
    csv = tmp_path / "line.csv"
    rows = (f"2026-03-01T08:{i // 60:02d}:{i % 60:02d},{v:.3f}\n" for i, v in enumerate(values))
    csv.write_text("timestamp,temp\n" + "".join(rows))
    r, root = drawn(["--input", str(csv), "--column", "temp", "--chart", "imr"], tmp_path / "t.svg")
    assert r["times"][45] == "2026-03-01T08:00:45" and len(r["times"]) == 60
    xlabels = [t for t in ("".join(e.itertext()) for e in root.iter(f"{SVG}text")) if t == "time"]
    assert xlabels  # the axis is named time, not point
    text = spc("--input", str(csv), "--column", "temp", "--chart", "imr").stdout
    assert "WE1 at point 45 2026-03-01T08:00:45" in text


def test_text_prints_limits_capability_and_counts_every_hit() -> None:
    r = json.loads(spc(*QCC_XBAR, "--json").stdout)
    text = spc(*QCC_XBAR, "--list", "4").stdout
    assert f"UCL {r['ucl']:.6g}" in text and f"LCL {r['lcl']:.6g}" in text
    cap = r["capability"]
    low, high = cap["intervals"]["cpk"]
    assert f"cpk     {cap['cpk']:.3f}   {low:.3f}..{high:.3f}" in text
    assert f"rule hits: {len(r['violations'])} in all" in text
    for rule, count in Counter(v["rule"] for v in r["violations"]).items():
        assert f"  {rule}: {count}  (" in text
    assert text.count(" at point ") == 4
    assert f"... {len(r['violations']) - 4} more not listed" in text


def test_autocorrelated_data_warn_and_the_residual_chart_is_one_flag_away(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    x = np.zeros(2000)
    for t in range(1, x.size):  # a 1 s historian: each reading mostly the one before
        x[t] = 0.9 * x[t - 1] + rng.normal()
    csv = tmp_path / "ar1.csv"
    csv.write_text("temp\n" + "".join(f"{v + 50:.4f}\n" for v in x))
    base = ["--input", str(csv), "--column", "temp", "--json"]
    imr = json.loads(spc(*base, "--chart", "imr").stdout)
    assert imr["autocorrelation"]["r1"] == pytest.approx(0.9, abs=0.03)
    assert imr["autocorrelation"]["significant"]
    assert any("--chart residual" in w and "autocorrelated" in w for w in imr["warnings"])
    residual = json.loads(spc(*base, "--chart", "residual").stdout)
    assert residual["ar1"]["phi"] == pytest.approx(0.9, abs=0.03)
    assert abs(residual["autocorrelation"]["r1"]) < 0.1
    assert not any("autocorrelated" in w for w in residual["warnings"])
    assert len(residual["violations"]) < len(imr["violations"]) / 5
    independent = tmp_path / "iid.csv"
    independent.write_text("temp\n" + "".join(f"{v:.4f}\n" for v in rng.normal(size=500)))
    iid = json.loads(spc("--input", str(independent), "--column", "temp", "--chart", "imr",
                         "--json").stdout)  # fmt: skip
    assert not iid["autocorrelation"]["significant"] and not iid["warnings"]


def test_docstring_examples_run() -> None:
    import doctest

    from agent.cli import spc_text

    result = doctest.testmod(spc_text)
    assert result.attempted > 0 and result.failed == 0
