"""`[[line]]`: several production lines in one site config, each with its own PLCs and model;
the checks of that form (agent/config/site.py reads it into `LineConfig`s).

    [[line]]
    name = "extruder-1"            # unique in the site; letters, digits, '.', '_', '-'
    [line.model]                   # optional: no bundle is commissioning mode for this line
    bundle = "state/lines/extruder-1/models/current"
    [line.detection]               # optional, as the top-level [detection] of a one-line site
    [line.learning]                # optional, as [learning]
    [line.explain]                 # optional, as [explain] (its catalogue names this line's tags)
    [[line.plc]]                   # at least one, as a top-level [[plc]]

`[opcua]`, `[journal]` and `[record]` stay at the top: one OPC-UA server, one journal and one
recording for the whole agent. A site of the one-line form (`[line] name` with a top-level
`[model]` and `[[plc]]`) is a site with one line; mixing both forms is refused.

Each line of this form has its own model store under the state directory,
`lines/<name>/` (`lineside bundle install --line NAME` installs there); a one-line site keeps
its store at the state directory itself, as before.
"""

from __future__ import annotations

import re
from pathlib import Path

from agent.config.plcs import PlcConfig
from agent.config.reader import Section
from agent.errors import ConfigError

#: The keys of one `[[line]]` table.
LINE_KEYS = {"name", "model", "plc", "detection", "learning", "explain"}
#: Top-level tables of the one-line form that a site of `[[line]]` tables keeps inside them.
PER_LINE_TABLES = ("model", "plc", "detection", "learning", "explain")
#: A line name is part of OPC-UA node ids (`Lines/<name>/...`) and of file names.
LINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def line_store(state_dir: Path, line: str) -> Path:
    """The model store root of a line of a `[[line]]` site: `<state dir>/lines/<line>`."""
    return state_dir / "lines" / line


def is_several_lines(root: Section) -> bool:
    """True for a site of `[[line]]` tables (TOML gives a list), False for `[line]`."""
    return isinstance(root.raw.get("line"), list)


def refuse_mixed_forms(root: Section) -> None:
    """A `[[line]]` site keeps each line's model, PLCs and detectors inside its line."""
    mixed = [key for key in PER_LINE_TABLES if root.has(key)]
    if mixed:
        shown = ", ".join(f"[[{k}]]" if k == "plc" else f"[{k}]" for k in mixed)
        raise ConfigError(
            mixed[0],
            f"{shown} at the top of a site with [[line]] tables: each line has its own",
            "move it into the line it belongs to ([line.model], [[line.plc]], [line.detection],"
            " ...) or use the one-line form: [line] name = ... with a top-level [model] and "
            "[[plc]]",
            source=root.source,
        )


def check_line_name(section: Section, seen: dict[str, str]) -> str:
    """The line's `name`: required, a valid node-id part, unique in the site."""
    section.reject_unknown(LINE_KEYS)
    name = section.get("name", str, fix='e.g. name = "extruder-1"')
    if not LINE_NAME.fullmatch(name):
        raise section.error(
            "name",
            f"{name!r} cannot name a line: it is part of OPC-UA node ids and file names",
            "use letters, digits, '.', '_' and '-' (at most 64), starting with a letter or digit",
        )
    if name in seen:
        raise section.error(
            "name", f"{name!r} is also the name of {seen[name]}", "line names must be unique"
        )
    seen[name] = section.path
    return name


def check_plcs_across_lines(lines: list[tuple[Section, tuple[PlcConfig, ...]]]) -> None:
    """A PLC belongs to exactly one line: its name, endpoint and unit are not another line's."""
    names: dict[str, str] = {}
    endpoints: dict[tuple[str, ...], str] = {}
    for section, plcs in lines:
        for i, plc in enumerate(plcs):
            where = f"{section.path}.plc[{i}]"
            if plc.name in names:
                raise ConfigError(
                    f"{where}.name",
                    f"PLC {plc.name!r} is also a PLC of {names[plc.name]}",
                    "a PLC belongs to one line: give each [[line.plc]] its own name",
                    source=section.source,
                )
            names[plc.name] = section.path
            for key in _endpoints(plc):
                if key in endpoints:
                    raise ConfigError(
                        where,
                        f"{' '.join(key[1:])} is also read by {endpoints[key]}",
                        "a PLC belongs to one line: list its tags in one line's tag map",
                        source=section.source,
                    )
                endpoints[key] = where


def _endpoints(plc: PlcConfig) -> list[tuple[str, ...]]:
    """What identifies the device(s) a connection reads, across lines."""
    if plc.serial is not None:
        return [("serial", "serial port", plc.serial.port)]
    if plc.opcua is not None:
        return [("opcua", "OPC-UA server", plc.opcua.endpoint)]
    return [("tcp", f"{plc.host}:{plc.port}", f"unit {d.unit}") for d in plc.devices]
