"""The grounding guard: an LLM explanation is published only if the facts support all of it.

An allow-list, not a deny-list: the answer is normalised first (`normalise`: NFKC, look-alikes
folded, invisible characters dropped), then every word, identifier, number, clock time and
cause in it must come from the facts or the explanation vocabulary. Checks, in order, each
with its reason (the first that fails is the verdict):

- `too-long`: over `MAX_CHARS` characters (checked first, in constant time);
- `control-character`: C0/C1 controls, ANSI escapes, bidi overrides;
- `empty`;
- `injection`: words to the model or its reader ("ignore previous instructions" ...);
- `markup`: HTML, markdown, links, URLs or addresses: explanations are plain text;
- `unsafe-advice`: advice to change or defeat a safety function, in any wording, English or
  Chinese, or a phrase the site's catalogue forbids;
- `blanket-claim`: "everything is normal" and its kin;
- `wrong-language`: not in the configured language (`en` or `zh`);
- `unknown-tag`: an identifier or tag the facts do not speak about;
- `wrong-time`: a clock time the facts do not hold;
- `unknown-cause`: a cause the facts do not offer (see `causes`);
- `wrong-number`: a number that is not a fact of what it is said of (see `binding`);
- `no-tag`: it names none of the event's tags (nothing an operator can act on);
- `unsupported-word`: a word neither the vocabulary nor the facts hold (see `lexicon`);
- `look-alike`: a character posing as a letter or digit (published text must be searchable).

A rejected answer is replaced by the template text by the caller, which counts the reason.

Safety advice is judged per sentence: a verb that defeats (bypass, override, turn off,
silence, jumper, 绕过, 关闭, 屏蔽 ...) anywhere in the same sentence as a safety function
(interlock, alarm, horn, e-stop, 联锁, 报警, 急停 ...), so that words between the two, or the
passive voice, change nothing; a few verbs are refused on their own.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from agent.config.catalogue import Catalogue
from agent.explain import binding, lexicon
from agent.explain.facts import Facts
from agent.explain.tokens import Token, control_character, look_alike, normalise, tokenise

_SENTENCE = re.compile(r"[^.!?;\n。！？；]+")
_ALWAYS = re.compile(
    r"\bby[\s-]*pass\w*|\bjumper\w*|\bcircumvent\w*|\bdefeat\w*|旁路|短接|跨接|跳线|绕过|绕开"
)
_DEFEAT = re.compile(
    r"\b(?:over[\s-]*rid\w*|disabl\w*|de[\s-]*activat\w*|inhibit\w*|silenc\w*|mut(?:e|ed|es|ing)"
    r"|jump(?:ed|ing|s)?\s+(?:out|over|across)|suppress\w*|ignor\w*|disregard\w*"
    r"|short(?:ed|ing|s)?[\s-]*(?:out|circuit\w*)|bridg\w*|tap(?:e|ed|ing)\s+over|ti(?:e|ed)\s+off"
    r"|(?:turn|switch|shut|power|cut|knock|take|shut|dial)\w*\b.{0,80}?\b(?:off|out|down)"
    r"|isolat\w*|unplug\w*|disconnect\w*|unwir\w*|remov\w*|reset\w*|cancel\w*"
    r"|skip\w*|kill\w*|deaden\w*|cheat\w*|snooz\w*|hush\w*|quiet\w*|shelv\w*|squelch\w*|gag\w*"
    r"|switch\w*\s+to\s+(?:manual|test|maintenance)|put\b.{0,60}?\b(?:manual|test|maintenance)"
    r"|(?:raise|increase|widen|loosen)\s+(?:\w+[\s-]+){0,5}?(?:set[\s-]*points?|limits?|ratings?"
    r"|trip\w*|thresholds?))\b"
    r"|关闭|关掉|关了|关停|断开|屏蔽|短路|解除|禁用|停用|忽略|无视|不用理会|不必理会|消音|静音"
    r"|取消|拆除|摘除|移除|切除|退出|强制|复位|拔掉|拔出|断电|解锁|撤除|撤掉|去掉|封掉"
    r"|(?:调高|提高|放宽|加大)[^。，,]{0,10}?(?:设定值|限值|阈值|报警值|跳闸值|定值)"
)
_SAFETY = re.compile(
    r"\b(?:interlock\w*|alarm\w*|alert\w*|horns?|sirens?|buzzers?|beacons?|klaxons?|annunciat\w*"
    r"|safety|safeties|safeguard\w*|guards?|guarding|e[\s-]*stops?|estops?|emergency[\s-]*stops?"
    r"|trips?|tripped|limit[\s-]*switch\w*|pressure[\s-]*switch\w*|relief[\s-]*valves?"
    r"|rupture[\s-]*dis[ck]s?|burst[\s-]*dis[ck]s?|light[\s-]*curtains?|door[\s-]*switch\w*"
    r"|protection\w*|protective|sis|esd|psv|permissives?|watchdogs?|lock[\s-]*outs?|breakers?"
    r"|fuses?|overloads?|warnings?|fail[\s-]*safe|shut[\s-]*down\s+systems?)\b"
    r"|联锁|连锁|报警|警报|告警|警铃|喇叭|蜂鸣器|声光|安全|急停|紧急停止|保护|防护|护罩|跳闸|限位"
    r"|泄压阀|爆破片|光幕|门开关|压力开关|联动|警告|熔断|保险丝|断路器"
)
_FORCE = re.compile(r"\bforc\w*\b.{0,40}?\b(?:outputs?|inputs?|bits?|signals?|coils?)\b"
                    r"|强制(?:输出|输入|置位|信号)")  # fmt: skip
_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override|skip)\b.{0,40}?\b(?:instructions?|prompts?|rules"
    r"|directions|guidelines|context|messages?|facts)\b"
    r"|\b(?:system|developer|hidden|initial|original)\s+(?:prompts?|messages?|instructions?)\b"
    r"|\byou\s+are\s+(?:now|no\s+longer)\b|\b(?:as|i\s+am)\s+an?\s+(?:ai|assistant|chatbot)\b"
    r"|\blanguage\s+model\b|\bchatgpt\b|\bopenai\b|\bjailbr\w*|\bdan\s+mode\b"
    r"|\bdeveloper\s+mode\b|\bdo\s+anything\s+now\b|\bnew\s+instructions?\b|\binstructions?\s*:"
    r"|\bprompt\s*:|\bact\s+as\b|\bpretend\b|\brole[\s-]*play\w*|\breveal\b|\bprint\s+the\b"
    r"|(?:^|\n)\s*(?:system|user|assistant|human|ai)\s*:|<\|[^|]{0,40}\|>|\[/?inst\]|<<\s*sys"
    r"|#{2,}\s*(?:instruction|response|system)"
    r"|(?:忽略|无视|忘记|忽视|不要理会)[^。]{0,12}?(?:指令|指示|提示|规则|要求|设定|事实)"
    r"|系统提示|提示词|你现在是|你不再是|你是一个|作为(?:一个)?(?:AI|ai|人工智能|语言模型|助手)"
    r"|语言模型|越狱|开发者模式|新的指令|扮演"
)
_BLANKET = re.compile(
    r"\b(?:everything|all|things|it\s+all|all\s+systems|all\s+values|all\s+tags|the\s+(?:line"
    r"|process|machine|plant|system|extruder))\s+(?:is|are|looks?|seems?|appears?|remains?|runs?"
    r"|running|operat\w*|work\w*)\s+(?:\w+\s+){0,2}?(?:normal\w*|fine|ok|okay|good|well|in\s+order"
    r"|under\s+control|healthy|nominal|as\s+expected)\b"
    r"|\bnothing\s+(?:is\s+)?(?:wrong|abnormal|unusual|to\s+worry|to\s+do|serious)\b"
    r"|\bno\s+(?:action|need|problem|issue|fault|anomaly|concern|reason\s+to|cause\s+for"
    r"|further\s+action|real)\b|\bfalse\s+(?:alarm|positive|alert)s?\b"
    r"|\bbe\s+(?:safely\s+)?(?:ignored|dismissed|disregarded)\b|\bsafely\s+ignor\w*"
    r"|\bsafe\s+to\s+(?:ignore"
    r"|continue|proceed|dismiss)\b|\ball\s+clear\b|\bnot\s+(?:a\s+real|an\s+actual|a\s+genuine)\b"
    r"|一切(?:都)?正常|均正常|都正常|全部正常|完全正常|运行正常|一切良好|没有(?:任何)?(?:问题|异常|故障)"
    r"|无(?:任何)?(?:异常|问题)|无需(?:处理|理会|担心|操作|检查|采取)|不需要(?:处理|检查|采取|担心)"
    r"|误报|虚警|可以忽略|不用(?:管|担心|处理)|无关紧要|没事"
)
_MARKUP = re.compile(
    r"<\s*/?\s*[A-Za-z!?]|&(?:#\d+|#x[0-9a-f]+|[a-z]{2,8});|[\[\]{}`|]|\*\*|__|~~"
    r"|(?:^|\n)\s*(?:#{1,6}\s|>)|\b[a-z][a-z0-9+.-]*://|\bwww\.|\b(?:javascript|vbscript|data"
    r"|file|mailto|tel|ftp|https?)\s*:|\b[a-z0-9-]+\.(?:com|net|org|io|cn|ru|info|xyz|dev)\b|\S@\S",
    re.IGNORECASE,
)


def unsafe_advice(text: str, site_phrases: tuple[str, ...] = ()) -> str | None:
    """Advice to change or defeat a safety function (or a phrase the site forbids), if any."""
    lowered = text.lower()
    for phrase in site_phrases:
        if phrase and phrase.lower() in lowered:
            return phrase
    hit = _ALWAYS.search(lowered) or _FORCE.search(lowered)
    if hit:
        return hit.group(0)
    for sentence in _SENTENCE.finditer(lowered):
        part = sentence.group(0)
        verb, noun = _DEFEAT.search(part), _SAFETY.search(part)
        if verb and noun:
            return part.strip()[:120]
    return None


def injection(text: str) -> str | None:
    """Words addressed to the model or its reader instead of the operator (prompt injection)."""
    hit = _INJECTION.search(text.lower())
    return hit.group(0).strip() if hit else None


def blanket_claim(text: str) -> str | None:
    """A claim that all is well, which no alarm's facts support."""
    hit = _BLANKET.search(text.lower())
    return hit.group(0) if hit else None


def markup(text: str) -> str | None:
    """HTML, markdown, a link, an address or a pictograph: an explanation is plain text."""
    hit = _MARKUP.search(text)
    if hit:
        return hit.group(0).strip() or hit.group(0)
    for c in text:
        if unicodedata.category(c) == "So" and c not in "°℃℉":  # emoji, box drawing ...
            return f"U+{ord(c):04X}"
    return None


MAX_CHARS = 1000
REASONS = (
    "too-long", "control-character", "empty", "markup", "injection", "unsafe-advice",
    "blanket-claim", "wrong-language", "unknown-tag", "wrong-time", "unknown-cause",
    "wrong-number", "unsupported-word", "no-tag", "look-alike",
)  # fmt: skip
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_.'/][A-Za-z0-9]+)*")


@dataclass(frozen=True)
class Verdict:
    """The guard's decision: accepted, or the reason and what triggered it."""

    accepted: bool
    reason: str = ""
    detail: str = ""


@dataclass(frozen=True)
class _Allowed:
    """What the facts let an answer say, normalised: literals, identifiers, words, numbers."""

    literals: list[str]
    idents: set[str]
    words: set[str]
    zh_words: set[str]
    numbers: list[float]
    characters: frozenset[str]


def _allowed(facts: Facts, catalogue: Catalogue) -> _Allowed:
    offered = [t for c in facts.causes for t in (*c.cause.values(), *c.check.values())]
    notes = [s.note for s in facts.similar if s.note]
    rules = [r for t in facts.tags for r in t.rules]
    raw = [facts.line, facts.event_id, *offered, *notes, *rules]
    literals = sorted({normalise(t) for t in raw if t.strip()}, key=len, reverse=True)
    units = [normalise(t.unit) for t in facts.tags if t.unit]
    tags = sorted(facts.tag_names)
    idents = {m.group() for t in [*literals, *units] for m in _IDENT.finditer(t)} | set(tags)
    words = lexicon.words_of([*literals, *units, *tags, *(t.direction for t in facts.tags)])
    counts = [len(facts.tags), len(facts.causes), len(facts.breaks), len(facts.similar)]
    in_literals = [tok.value for t in literals for tok in tokenise(t) if tok.kind == "number"]
    characters = frozenset("".join([*raw, *(t.unit for t in facts.tags), *tags]))
    zh = lexicon.zh_words_of([*literals, *units])
    return _Allowed(literals, idents, words, zh, [*map(float, counts), *in_literals], characters)


def _blank(text: str, literals: list[str]) -> str:
    """`text` with every literal of the facts replaced by spaces of the same length."""
    lowered = text.lower()
    out = list(text)
    for literal in literals:
        key = literal.lower()
        start = lowered.find(key)
        while start >= 0 and key:
            out[start : start + len(key)] = " " * len(key)
            start = lowered.find(key, start + len(key))
    return "".join(out)


def _unknown_tag(tokens: list[Token], facts: Facts, idents: set[str]) -> str | None:
    others = set(facts.line_tags) - facts.tag_names
    for t in tokens:
        if (t.kind == "ident" and t.text not in idents) or t.text in others:
            return t.text
    return None


def _unsupported(tokens: list[Token], allowed: _Allowed, language: str) -> str | None:
    words = [t.text for t in tokens if t.kind == "word"]
    found = lexicon.unknown_en_word(words, allowed.words)
    if found is not None:
        return found
    for t in tokens:
        if t.kind == "han":
            found = lexicon.unknown_zh_word(t.text, allowed.zh_words)
            if found is not None:
                return found
    return None


def check(
    text: str,
    facts: Facts,
    catalogue: Catalogue,
    tolerance: float = 0.01,
    language: str = "en",
    max_chars: int = MAX_CHARS,
) -> Verdict:
    """Accept `text` only if every word, tag, number, time and cause in it is backed by
    `facts`, in `language`, as plain text of at most `max_chars` characters."""
    if len(text) > max_chars:
        return Verdict(False, "too-long", f"{len(text)} characters, at most {max_chars}")
    control = control_character(text)
    if control is not None:
        return Verdict(False, "control-character", control)
    norm = normalise(text)
    if not norm.strip():
        return Verdict(False, "empty")
    for reason, found in (
        ("injection", injection(norm)),
        ("markup", markup(norm)),
    ):
        if found is not None:
            return Verdict(False, reason, found)
    allowed = _allowed(facts, catalogue)
    offered = [normalise(t) for c in facts.causes for t in (*c.cause.values(), *c.check.values())]
    advice = unsafe_advice(_blank(norm, offered), catalogue.deny)
    if advice is not None:
        return Verdict(False, "unsafe-advice", advice)
    blanket = blanket_claim(norm)
    if blanket is not None:
        return Verdict(False, "blanket-claim", blanket)
    blanked = _blank(norm, allowed.literals)
    tokens = tokenise(blanked)
    units = {normalise(t.unit) for t in facts.tags}
    prose = _blank(blanked, sorted({*facts.tag_names, *units, "SPC"}, key=len, reverse=True))
    words = [t.text for t in tokenise(prose) if t.kind == "word"]
    problem = lexicon.language_problem(norm, prose, language, words)
    if problem is not None:
        return Verdict(False, "wrong-language", problem)
    found = _unknown_tag(tokens, facts, allowed.idents)
    if found is not None:
        return Verdict(False, "unknown-tag", found)
    found = binding.wrong_time(tokens, facts)
    if found is not None:
        return Verdict(False, "wrong-time", found)
    found = binding.unknown_cause(norm, facts, catalogue, allowed.words | allowed.zh_words)
    if found is not None:
        return Verdict(False, "unknown-cause", found)
    found = binding.unbound_number(tokens, blanked, facts, allowed.numbers, tolerance)
    if found is not None:
        return Verdict(False, "wrong-number", found)
    if facts.tags and not any(t.text in {f.tag for f in facts.tags} for t in tokens):
        return Verdict(False, "no-tag", "names none of the event's tags")
    found = _unsupported(tokens, allowed, language)
    if found is not None:
        return Verdict(False, "unsupported-word", found)
    posing = look_alike(text, allowed.characters)
    if posing is not None:
        return Verdict(False, "look-alike", posing)
    return Verdict(True)
