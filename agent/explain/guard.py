"""The grounding guard: an LLM explanation is published only if the facts support all of it.

Checks, in order, each with its own rejection reason:

- `deny-list`: advice no explanation may give (bypassing interlocks, silencing alarms...);
- `unknown-tag`: a tag the facts do not speak about;
- `unknown-cause`: a cause that is neither a candidate of this event nor any cause at all
  the catalogue knows;
- `wrong-number`: a number that matches no fact within tolerance;
- `no-tag`: it names none of the event's tags (nothing an operator can act on).

A rejected answer is replaced by the template text by the caller, which counts the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.config.catalogue import Catalogue
from agent.explain.facts import Facts, clock

DENY_PATTERNS = (
    r"\bbypass",
    r"\boverrid\w*\b.{0,20}\b(interlock|safety|trip|limit)",
    r"\b(disabl|deactivat|inhibit)\w*\b.{0,20}\b(alarm|interlock|safety|trip|guard)",
    r"\b(mute|silence|suppress|ignore|acknowledge and ignore)\w*\b.{0,15}\balarms?\b",
    r"\bdefeat",
    r"\bjumper",
    r"\bforce\w*\b.{0,15}\b(output|input|bit|signal)",
    r"\bremove\b.{0,15}\bguard",
    r"旁路",
    r"短接",
    r"屏蔽",
    r"(关闭|禁用|解除|忽略)(了)?(报警|联锁|连锁|安全)",
    r"强制(输出|输入|置位)",
)
_TAG_LIKE = re.compile(r"\b[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+\b")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")
_EQUIPMENT = re.compile(r"\b[A-Z]{1,4}-\d+\b")
_CLOCK = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\b")
_CAUSE_EN = re.compile(
    r"\b(?:likely cause|probable cause|root cause|caused by|due to|because of|cause is)\b"
    r"\s*(?:is|:|was)?\s*([^.;,()]+)",
    re.IGNORECASE,
)
_CAUSE_ZH = re.compile(r"(?:可能原因|原因|由于|因为)[：:是为]?\s*([^。；，,;（(]+)")
_WORD = re.compile(r"[a-z]{3,}")
STOP_WORDS = {"the", "and", "for", "with", "from", "that", "this", "line", "probably", "likely"}


@dataclass(frozen=True)
class Verdict:
    """The guard's decision: accepted, or the reason and what triggered it."""

    accepted: bool
    reason: str = ""
    detail: str = ""


def _allowed_literals(facts: Facts, catalogue: Catalogue) -> list[str]:
    texts = [facts.line, facts.event_id, clock(facts.start), *facts.tag_names, *facts.line_tags]
    for mode in catalogue.modes:
        texts += [*mode.cause.values(), *mode.check.values()]
    texts += [s.note for s in facts.similar if s.note]
    texts += [tag for t in list(texts) for tag in _EQUIPMENT.findall(t)]  # F-101, TC-3 ...
    return sorted((t for t in texts if t), key=len, reverse=True)


def _cause_fits(phrase: str, facts: Facts) -> bool:
    phrase = phrase.lower()
    for c in facts.causes:
        for text in c.cause.values():
            if text.lower() in phrase or (phrase and phrase in text.lower()):
                return True
            words = {w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS}
            said = {w for w in _WORD.findall(phrase) if w not in STOP_WORDS}
            if words and len(words & said) * 2 >= len(words):
                return True
    return False


def _number_fits(token: str, facts_numbers: list[float], tolerance: float) -> bool:
    value = float(token)
    decimals = len(token.split(".")[1]) if "." in token else 0
    rounding = 0.5 * 10.0**-decimals
    return any(abs(value - f) <= max(tolerance * abs(f), rounding) for f in facts_numbers)


def check(text: str, facts: Facts, catalogue: Catalogue, tolerance: float = 0.02) -> Verdict:
    """Accept `text` only if every tag, number and cause in it is backed by `facts`."""
    if not text.strip():
        return Verdict(False, "empty")
    lowered = text.lower()
    for pattern in (*DENY_PATTERNS, *(re.escape(d.lower()) for d in catalogue.deny)):
        hit = re.search(pattern, lowered)
        if hit:
            return Verdict(False, "deny-list", hit.group(0))
    known = facts.tag_names
    for token in _TAG_LIKE.findall(text):
        if token not in known:
            return Verdict(False, "unknown-tag", token)
    for tag in facts.line_tags:
        if tag not in known and re.search(rf"\b{re.escape(tag)}\b", text):
            return Verdict(False, "unknown-tag", tag)
    candidates = {t.lower() for c in facts.causes for t in c.cause.values()}
    for cause in catalogue.causes:
        if cause.lower() in lowered and cause.lower() not in candidates:
            return Verdict(False, "unknown-cause", cause)
    for marker in (_CAUSE_EN, _CAUSE_ZH):
        for phrase in marker.findall(text):
            if not _cause_fits(phrase.strip(), facts):
                return Verdict(False, "unknown-cause", phrase.strip())
    rest = text
    for literal in _allowed_literals(facts, catalogue):
        rest = rest.replace(literal, " ")
    rest = _CLOCK.sub(" ", rest)
    numbers = facts.numbers()
    for token in _NUMBER.findall(rest):
        if not _number_fits(token, numbers, tolerance):
            return Verdict(False, "wrong-number", token)
    if known and not any(re.search(rf"\b{re.escape(tag)}\b", text) for tag in known):
        return Verdict(False, "no-tag", "names none of the event's tags")
    return Verdict(True)
