"""`lineside check-config` in a subprocess: exit codes, and what it says for every shipped file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.config_helpers import (
    CATALOGUES,
    FIRMWARE,
    SITE,
    SITES,
    catalogue_file,
    explain_site,
    file_ids,
    write_site,
)


def _check_config(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "check-config", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_config_cli_exit_codes(tmp_path: Path, bundle_dir: Path) -> None:
    good = write_site(tmp_path, SITE.read_text().replace("../../.demo/bundle", str(bundle_dir)))
    ok = subprocess.run(
        [sys.executable, "-m", "agent", "check-config", str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert f"ok (site, line extruder-1, 1 connection(s), 10 tags, model {bundle_dir})" in ok.stdout
    text = SITE.read_text()
    no_model = text[: text.index("[model]")] + text[text.index("[detection]") :]
    commissioning = subprocess.run(
        [sys.executable, "-m", "agent", "check-config", str(write_site(tmp_path, no_model))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert commissioning.returncode == 0, commissioning.stderr
    assert "10 tags, no model: commissioning mode, learns for 3600 s)" in commissioning.stdout
    bad = write_site(tmp_path, SITE.read_text().replace("unit = 1\n", "unit = 300\n"))
    failed = subprocess.run(
        [sys.executable, "-m", "agent", "check-config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 2
    assert "plc[0].unit" in failed.stderr and "Traceback" not in failed.stderr


def test_site_reports_a_catalogue_error_under_explain_catalogue(tmp_path: Path) -> None:
    bad = catalogue_file(
        tmp_path,
        '[[mode]]\nid = "a"\ncause = "x"\ncheck = "y"\n'
        'symptoms = [{tag = "nope", direction = "up"}]\n',
    )
    path = explain_site(tmp_path, f'catalogue = "{bad}"\n')
    result = subprocess.run(
        [sys.executable, "-m", "agent", "check-config", "--no-bundle", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "explain.catalogue: mode[0].symptoms[0].tag: 'nope' is not a tag" in result.stderr


@pytest.mark.parametrize("path", SITES, ids=file_ids(SITES))
def test_check_config_cli_accepts_site_without_bundle(path: Path) -> None:
    result = _check_config("--no-bundle", str(path))
    assert result.returncode == 0, result.stderr
    assert f"{path}: ok (site, " in result.stdout


#: The shipped sites that name a bundle, and those that run in commissioning mode (no model).
BUNDLED = [p for p in SITES if re.search(r"(?m)^bundle\s*=", p.read_text())]
COMMISSIONING = [p for p in SITES if p not in BUNDLED]


@pytest.mark.parametrize("path", COMMISSIONING, ids=file_ids(COMMISSIONING))
def test_check_config_cli_accepts_a_site_with_no_model_in_full(path: Path) -> None:
    result = _check_config(str(path))
    assert result.returncode == 0, result.stderr
    assert "no model: commissioning mode" in result.stdout


@pytest.mark.parametrize("path", BUNDLED, ids=file_ids(BUNDLED))
def test_check_config_cli_only_complains_about_the_bundle(path: Path, tmp_path: Path) -> None:
    # A copy beside the real map directories, pointing at a bundle that does not exist: the full
    # check must fail on model.bundle and on nothing else.
    for folder in ("plc", "opcua"):
        (tmp_path / folder).symlink_to(FIRMWARE / folder, target_is_directory=True)
    (tmp_path / "sites").mkdir()
    text, count = re.subn(
        r'(?m)^bundle\s*=\s*"[^"]*"', 'bundle = "no-such-bundle"', path.read_text(), count=1
    )
    assert count == 1, "the site has no model.bundle line"
    copy = tmp_path / "sites" / path.name
    copy.write_text(text)

    result = _check_config(str(copy))

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    field = "line[0].model.bundle" if "[[line]]" in text else "model.bundle"  # several lines
    assert lines[0].startswith(f"lineside check-config: {copy}: {field}: "), lines[0]
    assert "does not exist" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("path", CATALOGUES, ids=file_ids(CATALOGUES))
def test_failure_mode_catalogue_loads_and_checks(path: Path) -> None:
    from agent.config.catalogue import load_catalogue

    assert load_catalogue(path).modes
    result = _check_config(str(path))
    assert result.returncode == 0, result.stderr
    assert "failure-mode catalogue" in result.stdout


def test_check_config_prints_every_mistake_on_its_own_line(tmp_path: Path) -> None:
    from tests.unit.config.test_all_errors import three_mistakes

    result = _check_config("--no-bundle", str(three_mistakes(tmp_path)))

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4, result.stderr
    assert all(line.startswith("lineside check-config: ") for line in lines)
    text = result.stderr
    assert "site.toml: detection.spc_hits: must be greater than 0" in text
    assert "site.toml: plc[0].port: 70000 is outside 1..65535" in text
    assert "map.toml: plc[0].tag_map: tag[0].address: 40001 looks like a Modicon" in text
    assert 'set address_style = "modicon" at the top of the tag map' in text
    assert "map.toml: plc[0].tag_map: tag[1].type: unknown data type 'flaot32'" in text
    assert "Traceback" not in text


def test_check_config_on_a_tag_map_alone_refuses_a_datasheet_address(tmp_path: Path) -> None:
    path = tmp_path / "map.toml"
    path.write_text('[[tag]]\nname = "speed"\naddress = 40001\ntype = "int16"\n')
    refused = _check_config(str(path))
    assert refused.returncode == 2
    assert "tag[0].address: 40001 looks like a Modicon (datasheet) reference" in refused.stderr
    path.write_text('address_style = "modicon"\n' + path.read_text())
    accepted = _check_config(str(path))
    assert accepted.returncode == 0, accepted.stderr
    assert "ok (Modbus tag map, 1 tags)" in accepted.stdout


def test_a_site_with_no_model_and_no_tag_to_learn_from_is_refused(tmp_path: Path) -> None:
    text = (FIRMWARE / "sites" / "first-day.toml").read_text()
    (tmp_path / "sites").mkdir()
    tag_map = tmp_path / "all-excluded.toml"
    tag_map.write_text(
        '[[tag]]\nname = "mode"\naddress = 0\ntype = "uint16"\nrole = "setpoint"\n'
        '[[tag]]\nname = "running"\ntable = "coil"\naddress = 0\n'
        '[[tag]]\nname = "speed"\naddress = 1\ntype = "uint16"\ndetect = false\n'
    )
    site = tmp_path / "sites" / "site.toml"
    text = text.replace('"../../.first-day/', '"state/')  # state beside the copy
    site.write_text(text.replace('"../plc/simulated-extruder.toml"', f'"{tag_map}"'))
    result = _check_config(str(site))
    assert result.returncode == 2
    assert "no tag of the line can be learnt from" in result.stderr
    assert "detect = true" in result.stderr  # the fix
    run = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--config", str(site)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2 and "no tag of the line can be learnt from" in run.stderr


def test_check_config_names_the_line_of_each_wrong_field(tmp_path: Path) -> None:
    two_lines = FIRMWARE / "sites" / "two-lines.toml"
    result = _check_config("--no-bundle", str(two_lines))
    assert result.returncode == 0, result.stderr
    assert "2 lines: line extruder-1" in result.stdout and "line extruder-2" in result.stdout
    text = two_lines.read_text().replace('"../plc/', f'"{FIRMWARE}/plc/')
    copy = tmp_path / "two-lines.toml"
    copy.write_text(
        text.replace("port = 5021", "port = 0").replace(
            'name = "extruder-2"', 'name = "extruder-1"'
        )
    )
    result = _check_config("--no-bundle", str(copy))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert ": line[1].name: 'extruder-1' is also the name of line[0]" in lines[0]
    assert ": line[1].plc[0].port: 0 is outside 1..65535" in lines[1]
