"""The `[explain]` section of a site config: how anomaly explanations are made and budgeted.

[explain]
enabled = true              # explain anomaly events at all (default true)
language = "en"             # en | zh
mode = "template"           # template (deterministic, the default) | llm
catalogue = "../failure-modes/demo-extruder.toml"   # the site's failure modes
model = "/var/lib/lineside/models/explainer"        # an exported LLM dir (mode = "llm")
max_new_tokens = 96         # LLM token budget per explanation
max_seconds = 4.0           # LLM wall-clock budget per explanation
timeout_s = 20.0            # a worker silent this long is hung: killed and restarted
queue_size = 8              # events waiting for the worker; the oldest is dropped
nice = 10                   # worker niceness, 0..19 (the detection loop keeps priority)
cpu = 1                     # optional: pin the worker to this CPU
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from agent.config.catalogue import Catalogue, load_catalogue
from agent.config.reader import Section, field_names
from agent.errors import ConfigError
from agent.paths import firmware_configs

LANGUAGES = ("en", "zh")
MODES = ("template", "llm")


@dataclass(frozen=True)
class ExplainConfig:
    """How explanations are made: language, template or LLM, budgets, the worker's priority."""

    enabled: bool = True
    language: str = "en"
    mode: str = "template"
    catalogue: Catalogue = field(default_factory=lambda: Catalogue(modes=()))
    model: Path | None = None
    max_new_tokens: int = 96
    max_seconds: float = 4.0
    timeout_s: float = 20.0
    queue_size: int = 8
    nice: int = 10
    cpu: int | None = None


#: The keys of `[explain]`: ExplainConfig's fields.
KEYS = field_names(ExplainConfig)


def load_explain(section: Section, base: Path, tags: set[str] | None = None) -> ExplainConfig:
    """Read `[explain]`; the catalogue is loaded and, with `tags`, its symptoms checked."""
    section.reject_unknown(KEYS)
    d = ExplainConfig()
    catalogue = d.catalogue
    if section.has("catalogue"):
        name = section.get("catalogue", str)
        if "/" in name or name.endswith(".toml"):
            path = section.path_value("catalogue", base)
        else:  # a bare name is one of the shipped catalogues
            path = firmware_configs() / "failure-modes" / f"{name}.toml"
        try:
            catalogue = load_catalogue(path, tags)
        except ConfigError as exc:
            raise ConfigError(
                section.field("catalogue"), f"{exc.field}: {exc.problem}", exc.fix,
                source=str(path),
            ) from None  # fmt: skip
    mode = section.choice("mode", MODES, d.mode, fix="template or llm")
    model = section.path_value("model", base) if section.has("model") else None
    if mode == "llm" and model is None:
        raise section.error(
            "model",
            'is required with mode = "llm"',
            "point it at a dir made by lineside-export llm",
        )
    if model is not None and not (model / "model.onnx").is_file():
        raise section.error(
            "model", f"{model} has no model.onnx", "export one with `lineside-export llm`"
        )
    nice = section.get("nice", int, d.nice)
    if not 0 <= nice <= 19:
        raise section.error("nice", f"{nice} is outside 0..19")
    cpu = section.optional("cpu", int)
    if cpu is not None and cpu not in os.sched_getaffinity(0):
        raise section.error("cpu", f"CPU {cpu} is not available to this process")
    max_seconds = section.positive("max_seconds", float, d.max_seconds)
    timeout = section.positive("timeout_s", float, d.timeout_s)
    if timeout <= max_seconds:
        raise section.error(
            "timeout_s", f"{timeout} s must exceed max_seconds {max_seconds} s",
            "the worker needs its whole budget before it is judged hung",
        )  # fmt: skip
    return ExplainConfig(
        enabled=section.get("enabled", bool, d.enabled),
        language=section.choice("language", LANGUAGES, d.language, fix="en or zh"),
        mode=mode,
        catalogue=catalogue,
        model=model,
        max_new_tokens=section.positive("max_new_tokens", int, d.max_new_tokens),
        max_seconds=max_seconds,
        timeout_s=timeout,
        queue_size=section.positive("queue_size", int, d.queue_size),
        nice=nice,
        cpu=cpu,
    )
