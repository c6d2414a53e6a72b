"""The site's failure-mode catalogue: symptom patterns -> likely cause -> what to check.

A catalogue is a TOML file (see `firmware-configs/failure-modes/`) with one `[[mode]]` per
failure mode. A mode matches the facts of an event when its symptoms are seen: each symptom is a
tag and a direction (`up`, `down`, `step-up`, `step-down`, `drift-up`, `drift-down`, `stuck`,
`noisy`, `spikes`, `decoupled`); `up` and `down` accept a step or a drift.

Causes are ranked by how well each mode's signature matches what the event shows: a symptom
seen counts its tag's weight in the event (the fused attribution's share, the most likely tag
1.0), in full for the exact direction and `GENERIC` of it for `up`/`down`; a mode's score is
that sum less `UNSEEN` for each of its symptoms not seen. So a one-symptom mode on the tag the
evidence points at beats a two-symptom mode of which one was seen and a mode about a
neighbour that only moved along with it, and a mode whose every symptom was seen beats one
that explains a part of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import ConfigError

if TYPE_CHECKING:  # agent.config imports this module: read its reader lazily
    from agent.config.reader import Section

# What a tag did in the recent window, as facts.py classifies it.
DIRECTIONS = (
    "step-up", "step-down", "drift-up", "drift-down", "stuck", "noisy", "spikes", "steady",
)  # fmt: skip
SYMPTOM_DIRECTIONS = ("up", "down", *DIRECTIONS[:-1], "decoupled")
LANGUAGES = ("en", "zh")
UNSEEN = 0.5  # what a mode loses for each of its symptoms the event does not show
DOUBTFUL = 0.9  # a decoupling of a tag that also stepped or drifted cleanly, as an offset does
GENERIC = 0.8  # an `up` or `down` symptom fits a step or drift, less exactly than its own kind


@dataclass(frozen=True)
class Symptom:
    """One tag moving one way."""

    tag: str
    direction: str

    def seen(self, directions: Mapping[str, str], decoupled: frozenset[str]) -> bool:
        """True if the facts show this symptom."""
        return self.fit(directions, decoupled) > 0.0

    def fit(
        self,
        directions: Mapping[str, str],
        decoupled: frozenset[str],
        doubtful: frozenset[str] = frozenset(),
    ) -> float:
        """1.0 if the facts show exactly this symptom, GENERIC for `up`/`down`, DOUBTFUL for
        a decoupling of a tag that also moved cleanly (`doubtful`), else 0."""
        if self.direction == "decoupled":
            if self.tag in decoupled:
                return 1.0
            return DOUBTFUL if self.tag in doubtful else 0.0
        seen = directions.get(self.tag, "")
        if self.direction in ("up", "down"):
            return GENERIC if seen.endswith("-" + self.direction) else 0.0
        return 1.0 if seen == self.direction else 0.0


@dataclass(frozen=True)
class FailureMode:
    """A known way the line fails: its symptoms, the cause and the check, in each language."""

    id: str
    symptoms: tuple[Symptom, ...]
    cause: dict[str, str]
    check: dict[str, str]


@dataclass(frozen=True)
class Candidate:
    """A failure mode that fits an event, and how many of its symptoms were seen."""

    id: str
    cause: dict[str, str]
    check: dict[str, str]
    matched: int
    total: int
    score: float = 0.0  # how well the signature fits the event (module docstring)

    @property
    def fit(self) -> float:
        """Share of the mode's symptoms seen in the event (0..1)."""
        return self.matched / self.total


@dataclass(frozen=True)
class Catalogue:
    """Every failure mode of a site, plus phrases no explanation may contain."""

    modes: tuple[FailureMode, ...]
    deny: tuple[str, ...] = ()
    path: Path | None = None

    @property
    def causes(self) -> list[str]:
        """Every cause the catalogue knows, in every language."""
        return [text for m in self.modes for text in m.cause.values()]

    def match(
        self,
        directions: Mapping[str, str],
        decoupled: frozenset[str] = frozenset(),
        limit: int = 3,
        weights: Mapping[str, float] | None = None,
        doubtful: frozenset[str] = frozenset(),
    ) -> list[Candidate]:
        """Modes showing at least half their symptoms, best signature match first.

        `weights`: each tag's weight in the event (most likely tag 1.0); without, every tag 1.0.
        `doubtful`: tags whose correlations broke but which also stepped or drifted cleanly,
        as an offset does: a decoupling of theirs counts DOUBTFUL."""
        found = []
        for mode in self.modes:
            fits = [s.fit(directions, decoupled, doubtful) for s in mode.symptoms]
            matched = sum(f > 0 for f in fits)
            if matched and 2 * matched >= len(mode.symptoms):
                score = sum(
                    f * (1.0 if weights is None else weights.get(s.tag, 0.0))
                    for f, s in zip(fits, mode.symptoms, strict=True)
                ) - UNSEEN * (len(mode.symptoms) - matched)
                found.append(
                    Candidate(mode.id, mode.cause, mode.check, matched, len(mode.symptoms), score)
                )
        found.sort(key=lambda c: (-c.score, -c.fit, -c.matched, c.id))
        return found[:limit]


def _texts(section: Section, key: str) -> dict[str, str]:
    texts = {"en": section.get(key, str)}
    for language in LANGUAGES[1:]:
        other = section.optional(f"{key}_{language}", str)
        if other is not None:
            texts[language] = other
    return texts


def _mode(section: Section, tags: set[str] | None) -> FailureMode:
    from agent.config.reader import Section

    section.reject_unknown({"id", "cause", "check", "symptoms"} | {
        f"{k}_{lang}" for k in ("cause", "check") for lang in LANGUAGES[1:]
    })  # fmt: skip
    raw = section.raw.get("symptoms")
    if not isinstance(raw, list) or not raw or not all(isinstance(s, dict) for s in raw):
        raise section.error(
            "symptoms",
            "needs at least one symptom",
            'e.g. [{tag = "melt_pressure", direction = "up"}]',
        )
    symptoms = []
    for i, item in enumerate(raw):
        s = Section(item, section.field(f"symptoms[{i}]"), section.source)
        s.reject_unknown({"tag", "direction"})
        tag = s.get("tag", str)
        if tags is not None and tag not in tags:
            raise s.error(
                "tag", f"{tag!r} is not a tag of the line", "known: " + ", ".join(sorted(tags))
            )
        direction = s.choice("direction", SYMPTOM_DIRECTIONS, fix=", ".join(SYMPTOM_DIRECTIONS))
        symptoms.append(Symptom(tag, direction))
    return FailureMode(
        id=section.get("id", str),
        symptoms=tuple(symptoms),
        cause=_texts(section, "cause"),
        check=_texts(section, "check"),
    )


def load_catalogue(path: Path, tags: set[str] | None = None) -> Catalogue:
    """Read a failure-mode catalogue; raise ConfigError naming the field on a problem.

    With `tags`, every symptom must name one of them (the line's tags)."""
    from agent.config.reader import read_toml

    root = read_toml(path)
    root.reject_unknown({"catalogue", "mode"})
    head = root.table("catalogue", required=False)
    head.reject_unknown({"line", "deny"})
    deny = head.get("deny", list, [])
    if not all(isinstance(d, str) and d.strip() for d in deny):
        raise head.error("deny", "must be a list of non-empty strings")
    modes = tuple(_mode(s, tags) for s in root.tables("mode"))
    seen: dict[str, int] = {}
    for i, mode in enumerate(modes):
        if mode.id in seen:
            raise ConfigError(
                f"mode[{i}].id", f"{mode.id!r} is also mode[{seen[mode.id]}]", "ids must be unique",
                source=str(path),
            )  # fmt: skip
        seen[mode.id] = i
    return Catalogue(modes=modes, deny=tuple(deny), path=path)


def is_catalogue(root: dict[str, object]) -> bool:
    """True if a parsed TOML file is a failure-mode catalogue (for `check-config`)."""
    return "mode" in root and "plc" not in root
