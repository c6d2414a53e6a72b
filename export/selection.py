"""Which CSV columns the model gets: the tag map's word first, then the column classifier.

Every candidate feature column (all of the CSV's, or those named with `--columns`) is judged
on the training rows:

1. With `--tag-map`, a column whose tag is kept out of detection there (`detect = false`, or a
   `role` other than process without `detect = true`) is left out. Naming such a column in
   `--columns` is refused: the device would refuse the bundle (agent.bundles.checks).
2. `agent.core.columns.classify_columns` sorts the rest into process, constant, binary,
   setpoint-like and counter columns; only process columns are modelled. A column named in
   `--columns`, or marked `detect = true` with a non-process role in the tag map, is kept
   whatever it looks like, with a warning. `--keep-all-columns` switches this step off.

Each column left out is said once with its reason and recorded in the manifest's
`training.columns_left_out`; if nothing is left to model, the export refuses, listing each
column and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.config import NodeTag, Tag, load_tag_map
from agent.core.columns import classify_columns
from agent.errors import ConfigError
from export.data import Table, split_tables
from export.errors import ExportError

Log = Callable[[str], None]
#: How a column left out on the tag map's word is recorded, beside the classifier's kinds.
TAG_MAP_KIND = "tag map"


@dataclass(frozen=True)
class Selection:
    """The columns to model, in CSV order, and each one left out with its kind and reason."""

    kept: list[str]
    left_out: dict[str, tuple[str, str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per column left out, then the warnings, for the training log."""
        out = [
            f"left out {name}: {why}" if kind == TAG_MAP_KIND else f"left out {name}: {kind}, {why}"
            for name, (kind, why) in self.left_out.items()
        ]
        if any(kind != TAG_MAP_KIND for kind, _ in self.left_out.values()):
            out.append("(name a column in --columns, or pass --keep-all-columns, to model it)")
        return out + self.warnings

    def record(self) -> dict[str, dict[str, str]]:
        """The manifest's `training.columns_left_out`: kind and reason by column."""
        return {name: {"kind": kind, "reason": why} for name, (kind, why) in self.left_out.items()}


def read_tag_map_tags(path: Path) -> dict[str, Tag | NodeTag]:
    """The tags of a PLC tag map by name, read and validated exactly as the agent reads it."""
    try:
        tag_map = load_tag_map(path)
    except ConfigError as exc:
        raise ExportError(f"tag map {exc}") from None
    return {tag.name: tag for tag in tag_map.tags}


def _tag_map_word(tag: Tag | NodeTag) -> str:
    if tag.role == "process":
        return "the tag map sets detect = false"
    return f"the tag map marks it role = {tag.role!r}"


def _forced_by_tag_map(tag: Tag | NodeTag | None) -> bool:
    """A non-process role with detect = true: the site asked for it to be modelled."""
    return tag is not None and tag.detect and tag.role != "process"


def select_columns(
    tables: list[Table],
    named: list[str] | None,
    tags: dict[str, Tag | NodeTag],
    keep_all: bool,
) -> Selection:
    """The columns to model from the candidates of `tables` (see the module docstring)."""
    columns = tables[0].columns
    blocked = [c for c in columns if c in tags and not tags[c].detect]
    if named is not None and blocked:
        raise ExportError(
            f"--columns names {', '.join(blocked)}, which the tag map keeps out of detection "
            f"({'; '.join(f'{c}: {_tag_map_word(tags[c])}' for c in blocked)}); leave them out "
            "of --columns, or set detect = true on them in the tag map"
        )
    classes = {} if keep_all else classify_columns(split_tables(tables).stacked("train"), columns)
    left_out: dict[str, tuple[str, str]] = {}
    warnings: list[str] = []
    for name in columns:
        found = classes.get(name)
        if name in blocked:
            left_out[name] = (TAG_MAP_KIND, _tag_map_word(tags[name]))
        elif found is None or found.modelled:
            continue
        elif named is not None or _forced_by_tag_map(tags.get(name)):
            why = "named in --columns" if named is not None else "the tag map sets detect = true"
            warnings.append(
                f"warning: {name} looks {found.kind.value} ({found.reason}); "
                f"modelled anyway ({why})"
            )
        else:
            left_out[name] = (found.kind.value, found.reason)
    kept = [c for c in columns if c not in left_out]
    selection = Selection(kept=kept, left_out=left_out, warnings=warnings)
    if not kept:
        listed = "; ".join(f"{n}: {kind}, {why}" for n, (kind, why) in selection.left_out.items())
        raise ExportError(
            f"every column is left out, nothing is left to model ({listed}); record process "
            "signals, or name the columns to model with --columns (--keep-all-columns keeps "
            "every column the tag map allows)"
        )
    return selection
