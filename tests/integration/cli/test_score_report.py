"""`lineside score --report`: the HTML report of a replay, checked against the same run's CSV."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.cli.score_report import alarm_spans


def _faulty_historian(path: Path, labelled: bool = True) -> tuple[int, int]:
    """Ten minutes of the simulator with melt_pressure stepped up 25 bar in rows 300..379."""
    from agent.demo.run import write_historian

    write_historian(path, rows=600, seed=5)
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    column = rows[0].index("melt_pressure")
    out = [rows[0] + (["anomaly"] if labelled else [])]
    for k, row in enumerate(rows[1:]):
        fault = 300 <= k < 380
        if fault:
            row[column] = f"{float(row[column]) + 25:.4f}"
        out.append(row + ([str(int(fault))] if labelled else []))
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(out)
    return 300, 380


@pytest.fixture(scope="module")
def report(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    work = tmp_path_factory.mktemp("report")
    source = work / "fault.csv"
    _faulty_historian(source)
    out, html = work / "out.csv", work / "report.html"
    args = ["score", "--bundle", str(bundle_dir), "--input", str(source)]
    assert main([*args, "--output", str(out), "--report", str(html)]) == 0
    with out.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return {"html": html.read_text(encoding="utf-8"), "rows": rows}


def test_the_report_is_one_self_contained_file(report: dict[str, object]) -> None:
    html = str(report["html"])
    assert "<script" not in html and "<link" not in html and "@import" not in html
    urls = set(re.findall(r"https?://[^\"' )]+", html))
    assert urls == {"http://www.w3.org/2000/svg"}  # the SVG namespace, never fetched
    assert html.count("<svg") >= 2


def test_alarms_are_shaded_and_labelled_as_in_the_csv(report: dict[str, object]) -> None:
    html, rows = str(report["html"]), list(report["rows"])  # type: ignore[call-overload]
    import numpy as np

    spans = alarm_spans(np.array([r["anomaly"] == "1" for r in rows]))
    assert spans, "the 25 bar step must raise the line's alarm"
    score_svg = html.split("<svg")[1]
    assert score_svg.count('class="band"') == len(spans)
    labels = re.findall(r'class="band-label"[^>]*>([^<]+)<', score_svg)
    assert labels == [f"A{k + 1}" for k in range(len(spans))]
    threshold = float(next(r["threshold"] for r in rows if r["threshold"]))
    assert f"threshold = {threshold:.4g}" in score_svg
    sections = re.findall(r"<section class='alarm' id='(A\d+)'>", html)
    assert sections == labels


def test_each_alarm_names_its_top_tags_with_traces_and_an_explanation(
    report: dict[str, object],
) -> None:
    html = str(report["html"])
    first = html.split("<section class='alarm' id='A1'>")[1].split("</section>")[0]
    tags = re.search(r"top tags: ([^<]+)</p>", first)
    assert tags is not None
    top = tags.group(1).split(", ")
    assert top[0] == "melt_pressure"  # the stepped tag leads
    traces = re.findall(r'class="chart-title">([^<(]+)', first)
    assert [t.strip() for t in traces] == top
    explanation = re.search(r"<p class='explanation'>([^<]+)</p>", first)
    assert explanation is not None and "melt_pressure" in explanation.group(1)
    assert "above its normal range" in explanation.group(1)
    assert "UCL = " in first and "LCL = " in first


def test_summary_counts_alarms_and_the_false_alarm_rate(report: dict[str, object]) -> None:
    html, rows = str(report["html"]), list(report["rows"])  # type: ignore[call-overload]
    import numpy as np

    alarm = np.array([r["anomaly"] == "1" for r in rows])
    fault = np.zeros(len(rows), dtype=bool)
    fault[300:380] = True
    spans = alarm_spans(alarm)
    false = [s for s in spans if not fault[s[0] : s[1]].any()]
    cells = dict(re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td></tr>", html))
    assert cells["alarms"] == str(len(spans))
    assert cells["labelled faults found"] == "1 of 1"
    assert cells["false alarms (no labelled fault row)"].startswith(f"{len(false)} of {len(spans)}")
    normal_in_alarm = 100 * (alarm & ~fault).sum() / (~fault).sum()
    assert cells["normal rows in alarm"] == f"{normal_in_alarm:.2f} %"
    assert cells["rows in alarm"].startswith(f"{int(alarm.sum())} (")


def test_spc_rule_hits_are_counted_per_tag(report: dict[str, object]) -> None:
    html = str(report["html"])
    hits = html.split("<h2>SPC rule hits</h2>")[1]
    table = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>(\d+)</td></tr>", hits)
    pressure = {rule: int(n) for tag, rule, n in table if tag == "melt_pressure"}
    assert pressure.get("beyond-limits", 0) >= 60  # most of the 80 stepped rows


def test_the_csv_gains_threshold_shift_and_iso_times(report: dict[str, object]) -> None:
    rows = list(report["rows"])  # type: ignore[call-overload]
    assert rows[0]["time"] == "2026-01-01T00:00:00+00:00"
    assert {"threshold", "shift_score", "shift_threshold", "shift_alarm"} <= set(rows[0])
    shift = [float(r["shift_score"]) for r in rows if r["shift_score"]]
    limit = float(rows[0]["shift_threshold"])
    assert max(shift[300:380]) > limit > max(shift[:290])  # the step crosses it, normal does not


def test_a_report_path_that_cannot_be_written_exits_2(
    bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.csv"
    _faulty_historian(source, labelled=False)
    bad = tmp_path / "missing-dir" / "r.html"
    args = ["score", "--bundle", str(bundle_dir), "--input", str(source), "--report", str(bad)]
    assert main(args) == 2
    assert "cannot write" in capsys.readouterr().err and not bad.exists()


def test_docstring_examples_run() -> None:
    import doctest

    from agent.cli import score_report
    from agent.pipeline import replay

    for module in (score_report, replay):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0


def test_a_catalogue_puts_the_likely_cause_in_the_explanations(
    bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent.paths import firmware_configs

    source = tmp_path / "in.csv"
    _faulty_historian(source, labelled=False)
    html = tmp_path / "r.html"
    catalogue = firmware_configs() / "failure-modes" / "demo-extruder.toml"
    args = ["score", "--bundle", str(bundle_dir), "--input", str(source), "--report", str(html)]
    assert main([*args, "--catalogue", str(catalogue)]) == 0
    explanation = re.search(r"<p class='explanation'>([^<]+)</p>", html.read_text())
    assert explanation is not None and "Likely cause" in explanation.group(1)
    assert "labelled faults found" not in html.read_text()  # no labels, no such row
    bad = tmp_path / "bad.toml"
    bad.write_text("[[mode]]\nid = 'x'\n")
    capsys.readouterr()
    html.unlink()
    assert main([*args, "--catalogue", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml: mode[0].symptoms" in err and "fix:" in err
    assert not html.exists()  # a refused catalogue writes no report
