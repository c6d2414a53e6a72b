"""Every number, clock time and cause of an answer bound to the fact it comes from. Pure.

A number is read as the quantity it stands next to in its sentence: the unit after it (`bar`
is the tag whose unit is bar, `s` the event's duration), the tag or quantity word before it
(`melt_pressure ... 204.1`, `threshold 8.0`, `评分 12.0`), else the one after it. It must then
be one of that quantity's facts (a tag's value, its normal range's ends, its contribution),
within the rounding it is written with: a true number said of the wrong tag is refused. Only
a number with nothing to bind to may be any fact's number (or a count of the facts, or a
number of an offered check such as "zone 3"). A clock time must be one the facts hold.

Causes likewise: exactly the catalogue entries the facts offer, no more. Three checks (on
normalised, lower-case text):

- a cause of the catalogue that the facts do not offer, whole or any word of it that the
  explanation vocabulary does not hold ("bearing" of "gearbox bearing wear");
- after a cause marker ("likely cause:", "due to", "可能原因：", "由于" ...), anything but an
  offered cause, written exactly: no half of one, no second cause after a comma or an "or"
  unless the facts offer that one too;
- before a backward marker ("... is the likely cause", "...所致"), the same.

Causes said with no marker at all meet the vocabulary check of `lexicon` instead.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from agent.config.catalogue import Catalogue
from agent.explain.facts import Facts, forecast_numbers
from agent.explain.lexicon import EN_FUNCTION, EN_WORDS, ZH_CHARS, ZH_WORDS
from agent.explain.tokens import Token, normalise

DURATION_UNITS = ("seconds", "second", "secs", "sec", "s", "秒钟", "秒")
#: A drift forecast's time to its limit is said in minutes (agent.explain.template).
MINUTE_UNITS = ("minutes", "minute", "mins", "min", "分钟")
#: Words and Chinese terms that name a quantity of the facts other than a tag.
SUBJECT_WORDS = {
    "score": "score", "scores": "score", "scored": "score", "threshold": "threshold",
    "thresholds": "threshold", "correlation": "correlation", "correlations": "correlation",
    "correlated": "correlation", "similarity": "similarity", "similar": "similarity",
    "contribution": "contribution", "contributions": "contribution",
    "contributes": "contribution", "contributing": "contribution", "duration": "duration",
    "lasted": "duration", "lasting": "duration",
}  # fmt: skip
SUBJECT_HAN = {
    "评分": "score", "得分": "score", "分数": "score", "阈值": "threshold", "门限": "threshold",
    "相关系数": "correlation", "相关性": "correlation", "相似度": "similarity",
    "相似": "similarity", "贡献": "contribution", "持续": "duration",
}  # fmt: skip
_HAN_SUBJECT = re.compile("|".join(sorted(SUBJECT_HAN, key=len, reverse=True)))


@dataclass(frozen=True)
class Quantity:
    """One number of the facts: what it is of (a tag or a quantity word), its value and unit."""

    subject: str
    value: float
    unit: str = ""


def quantities(facts: Facts) -> list[Quantity]:
    """Every number of the facts with the subject it belongs to."""
    found = [Quantity("duration", facts.duration_s, "s")]
    if facts.score is not None:
        found.append(Quantity("score", facts.score))
    if facts.threshold is not None:
        found.append(Quantity("threshold", facts.threshold))
    for t in facts.tags:
        unit = normalise(t.unit)
        found += [Quantity(t.tag, v, unit) for v in (t.value, t.low, t.high)]
        if t.contribution is not None:
            found += [Quantity(t.tag, t.contribution), Quantity("contribution", t.contribution)]
        if t.forecast is not None:
            limit, *times = forecast_numbers(t.forecast)
            found.append(Quantity(t.tag, limit, unit))
            half = len(times) // 2  # seconds, then the same in minutes
            found += [Quantity(t.tag, v, "s") for v in times[:half]]
            found += [Quantity(t.tag, v, "min") for v in times[half:]]
    for b in facts.breaks:
        found += [Quantity("correlation", b.reference), Quantity("correlation", b.recent)]
    found += [Quantity("similarity", s.similarity) for s in facts.similar]
    return found


def _unit_after(text: str, end: int, units: list[str]) -> str:
    rest = text[end : end + 16].lstrip(" \t")
    for unit in units:
        if rest.startswith(unit):
            after = rest[len(unit) : len(unit) + 1]
            if not (after.isascii() and after.isalnum()) or not unit.isascii():
                return unit
    return ""


def _subjects(tokens: list[Token], tags: set[str]) -> list[tuple[int, str]]:
    found = []
    for t in tokens:
        if t.kind in ("ident", "word") and t.text in tags:
            found.append((t.start, t.text))
        elif t.kind == "word" and t.text in SUBJECT_WORDS:
            found.append((t.start, SUBJECT_WORDS[t.text]))
        elif t.kind == "han":
            found += [(t.start + m.start(), SUBJECT_HAN[m.group()])
                      for m in _HAN_SUBJECT.finditer(t.text)]  # fmt: skip
    return found


def _fits(token: Token, values: list[float], tolerance: float) -> bool:
    rounding = 0.5 * 10.0**-token.decimals * (1 + 1e-9) + 1e-12  # 1.95 prints as 1.9
    return any(abs(token.value - v) <= max(tolerance * abs(v), rounding) for v in values)


def unbound_number(
    tokens: list[Token], text: str, facts: Facts, free: list[float], tolerance: float
) -> str | None:
    """The first number that is not a fact of the quantity it is attached to, explained."""
    facts_q = quantities(facts)
    tag_units = {t.tag: normalise(t.unit) for t in facts.tags}
    units = sorted(
        {q.unit for q in facts_q if q.unit} | set(DURATION_UNITS) | set(MINUTE_UNITS),
        key=len,
        reverse=True,
    )
    subjects = _subjects(tokens, facts.tag_names | set(facts.line_tags))
    stops = [t.start for t in tokens if t.kind == "stop"]
    for token in tokens:
        if token.kind != "number":
            continue
        first = max((s for s in stops if s < token.start), default=-1)
        last = min((s for s in stops if s > token.start), default=len(text))
        before = [s for s in subjects if first < s[0] < token.start]
        after = [s for s in subjects if token.end <= s[0] < last]
        unit = _unit_after(text, token.end, units)
        if unit in DURATION_UNITS and unit not in tag_units.values():
            # the event's duration, or a time to limit of the tag the sentence speaks of
            near = [s for s in before if s[1] in tag_units][-1:] or [
                s for s in after if s[1] in tag_units
            ][:1]
            tag = near[0][1] if near else ""
            values = [
                q.value
                for q in facts_q
                if q.subject == "duration" or (q.unit == "s" and q.subject == tag)
            ]
            said = f"{token.text} {unit}"
        elif unit in MINUTE_UNITS:
            near = [s for s in before if s[1] in tag_units][-1:] or [
                s for s in after if s[1] in tag_units
            ][:1]
            tag = near[0][1] if near else ""
            values = [q.value for q in facts_q if q.unit == "min" and (q.subject == tag or not tag)]
            said = f"{token.text} {unit}" + (f" of {tag}" if tag else "")
        elif unit:
            near = [s for s in before if s[1] in tag_units][-1:] or [
                s for s in after if s[1] in tag_units
            ][:1]
            tag = near[0][1] if near else ""
            if tag and tag_units[tag] != unit:
                return f"{token.text} {unit} said of {tag}, whose unit is {tag_units[tag]!r}"
            values = [q.value for q in facts_q if q.unit == unit and (q.subject == tag or not tag)]
            said = f"{token.text} {unit}" + (f" of {tag}" if tag else "")
        else:
            near = before[-1:] or after[:1]
            subject = near[0][1] if near else ""
            owner = [s[1] for s in before if s[1] in tag_units][-1:]
            if subject == "contribution" and owner:  # "throughput's contribution 4.0"
                subject = owner[0]
            values = (
                [q.value for q in facts_q if q.subject == subject]
                if subject
                else [*(q.value for q in facts_q), *free]
            )
            said = token.text + (f" of {subject}" if subject else "")
        if not _fits(token, values, tolerance):
            return said
    return None


def fact_clocks(facts: Facts) -> list[float]:
    """The local times of day (s since midnight) the facts hold: start, raise, similar events."""
    stamps = [facts.start, facts.start + facts.duration_s, *(s.ts for s in facts.similar)]
    out = []
    for ts in stamps:
        t = time.localtime(ts)
        out.append(float(t.tm_hour * 3600 + t.tm_min * 60 + t.tm_sec))
    return out


def wrong_time(tokens: list[Token], facts: Facts) -> str | None:
    """The first clock time that is none of the facts' times (HH:MM is that time's minute)."""
    allowed = fact_clocks(facts)
    for token in tokens:
        if token.kind != "time":
            continue
        if token.decimals:  # with seconds: exactly
            ok = token.value in allowed
        else:
            ok = any(token.value in (a // 60 * 60, (a + 30) // 60 * 60) for a in allowed)
        if not ok:
            return token.text
    return None


# -- causes --
_FORWARD = re.compile(
    r"\b(?:(?:the\s+)?(?:most\s+)?(?:likely|probable|possible|root|main|suspected|primary)\s+causes?"
    r"|the\s+causes?|caused\s+by|due\s+to|because\s+of|owing\s+to|(?:a\s+|the\s+)?result\s+of"
    r"|resulting\s+from|stems?\s+from|attributed\s+to|blame\s+on)\b"
    r"(?:\s*(?:is|are|was|would\s+be|could\s+be|may\s+be|might\s+be|seems\s+to\s+be|:))?"
    r"|(?:最?可能的?原因|主要原因|根本原因|原因)(?:是|为|可能是|:)?|由于|因为|归因于|源于|疑似|怀疑是"
)
_BACKWARD = re.compile(
    r"\b(?:is|are|was|seems\s+to\s+be)\s+(?:the\s+|a\s+)?(?:most\s+)?(?:likely|probable|possible"
    r"|root|main|suspected)?\s*causes?\b|\b(?:is|are)\s+(?:likely\s+|probably\s+)?to\s+blame\b"
    r"|所致|是(?:可能|最可能|主要)?的?原因"
)
_CLAUSE_END = re.compile(r"[.;!?\n。；！？]")
_FILLER = re.compile(r"^(?:\s|:|,|a\b|an\b|the\b|likely\b|probably\b|possibly\b|是|为|可能|一个)+")
_JOIN = re.compile(r"^\s*(?:,|、|，|\bor\b|\band\b|\bor\s+a\b|\band\s+a\b|或者|或|和|以及|及)+\s*"
                   r"(?:an?\b|the\b)?\s*")  # fmt: skip
_CONTINUE = re.compile(
    r"^\s*(?:[,，、]\s*)?(?:so\b|then\b|check\w*|which\b|please\b|and\s+(?:check|so|then)\b"
    r"|therefore\b|建议|请|需|应|检查|因此|所以|可检查)"
)


def _offered(facts: Facts) -> list[str]:
    texts = {normalise(t).lower().strip() for c in facts.causes for t in c.cause.values()}
    return sorted((t for t in texts if t), key=len, reverse=True)


def _rest_is_offered(rest: str, offered: list[str], budget: int, tags: set[str]) -> str | None:
    """None if `rest` (after a marker) is offered causes, joined, then a clause end or an
    action, or starts with a tag of the facts (what it did is checked elsewhere); else the
    part that is not."""
    rest = _FILLER.sub("", rest)
    if any(rest.startswith(t) for t in tags):
        return None
    used = 0
    while True:
        cause = next((c for c in offered if rest.startswith(c)), None)
        if cause is None:
            return rest.strip()[:80] or "(nothing)"
        used += 1
        rest = rest[len(cause) :]
        if used > budget:
            return cause
        tail = rest.strip()
        if not tail or _CLAUSE_END.match(tail) or _CONTINUE.match(rest):
            return None
        joined = _JOIN.match(rest)
        if joined is None:
            return tail[:80]
        rest = rest[joined.end() :]


def _zh_pieces(cause: str, allowed: set[str]) -> list[str]:
    """The two-character pieces of a Chinese cause that no vocabulary word covers."""
    vocabulary = sorted((w for w in ZH_WORDS | allowed if len(w) > 1), key=len, reverse=True)
    rest = cause
    for word in vocabulary:
        if word in rest:
            rest = rest.replace(word, " ")
    pairs = [rest[i : i + 2] for i in range(len(rest) - 1)]
    return [p for p in pairs if re.fullmatch(r"[\u4e00-\u9fff]{2}", p) and not set(p) <= ZH_CHARS]


def unknown_cause(text: str, facts: Facts, catalogue: Catalogue, allowed: set[str]) -> str | None:
    """A cause `text` names that the facts do not offer, or None. `allowed`: the facts' words."""
    lowered = text.lower()
    offered = _offered(facts)
    tags = {t.lower() for t in facts.tag_names}
    for cause in catalogue.causes:
        known = normalise(cause).lower()
        if known in offered:
            continue
        if known in lowered:
            return cause
        own = [w for w in re.findall(r"[a-z]+", known)
               if w not in EN_WORDS and w not in EN_FUNCTION and w not in allowed]  # fmt: skip
        own += _zh_pieces(known, allowed)
        for word in own:
            pattern = rf"(?<![a-z]){word}(?![a-z])" if word.isascii() else re.escape(word)
            if re.search(pattern, lowered):
                return f"{word} (of {cause!r})"
    budget = max(1, len(facts.causes))
    for m in _FORWARD.finditer(lowered):
        end = _CLAUSE_END.search(lowered, m.end())
        rest = lowered[m.end() : end.start() if end else len(lowered)]
        if not rest.strip(" ,:"):
            continue  # "... is the likely cause.": a backward marker, checked below
        problem = _rest_is_offered(rest, offered, budget, tags)
        if problem is not None:
            return problem
    for m in _BACKWARD.finditer(lowered):
        start = max((e.end() for e in _CLAUSE_END.finditer(lowered, 0, m.start())), default=0)
        before = re.sub(r"(?:\s|the\b|a\b|an\b|,)+$", "", lowered[start : m.start()]).strip()
        if not any(before.endswith(c) for c in offered):
            return before[-80:] or "(nothing)"
    return None
