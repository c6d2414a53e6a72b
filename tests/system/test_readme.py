"""README.md is a first-day document: two commands, five steps, then short reference sections."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FIVE_STEPS = [
    "lineside probe --host 192.168.0.10 --unit 1 --start 40001 --count 20",
    "lineside check-config site.toml",
    "lineside run --config site.toml",
    "lineside-export train --data recordings/ --tag-map my-device.toml --out bundle/\n"
    "   lineside-export sign bundle/ --key keys/KEY_ID.key --out my-line.bundle",
    "lineside bundle install my-line.bundle --state-dir state/ --trust keys/ --config site.toml",
]


def headings(text: str) -> list[str]:
    """The `## ` headings, in order."""
    return [line[3:] for line in text.splitlines() if line.startswith("## ")]


def test_it_opens_with_the_two_commands_ci_runs() -> None:
    first_block = README.read_text().split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:]]
    assert [c for c in commands if c] == ["make demo", "make test"]
    ci = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ci[-1] == "exec make test"


def test_the_five_steps_and_real_plcs_come_right_after_the_commands() -> None:
    text = README.read_text()
    assert headings(text)[:2] == ["Your own PLC in five steps", "Connecting real PLCs"]
    steps = text.split("## Your own PLC in five steps")[1].split("\n## ")[0]
    blocks = [b.strip() for b in re.findall(r"```sh\n(.*?)```", steps, re.S)]
    assert blocks == FIVE_STEPS


def test_long_discussions_live_in_docs() -> None:
    text = README.read_text()
    assert "SKAB" not in "".join(headings(text))
    assert "| Lineside `anomaly`" not in text  # the figures are in docs/skab.md
    assert "| Lineside `anomaly`" in (ROOT / "docs" / "skab.md").read_text()


def test_every_relative_link_resolves() -> None:
    text = README.read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
        for line in text.splitlines()
        if (h := line.lstrip("#").strip()) and line.startswith("#")
    }
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert links, "the README links its docs"
    for link in links:
        if link.startswith("#"):
            assert link[1:] in anchors, link
        elif "://" not in link:
            assert (ROOT / link.split("#")[0]).exists(), link
