"""The LLM prompt: the facts of an event as compact text, nothing else. Pure.

The same function builds the prompts the student is fine-tuned on (`lineside-export distil`)
and the prompts it sees on the device, so the two can never drift apart.
"""

from __future__ import annotations

from agent.explain.facts import Facts, clock, fmt

INSTRUCTION = {
    "en": "Explain this alarm to the operator in 2-4 short sentences, using only these facts.",
    "zh": "请只根据以下事实，用 2-4 句简短的话向操作员解释这个报警。",
}
ANSWER = {"en": "Explanation:", "zh": "解释："}


def facts_lines(facts: Facts) -> list[str]:
    """One line per fact, in a fixed order and format."""
    lines = [
        f"line {facts.line}; {facts.kind} since {clock(facts.start)} ({fmt(facts.duration_s)} s)"
    ]
    if facts.score is not None and facts.threshold is not None:
        lines.append(f"score {fmt(facts.score)}; threshold {fmt(facts.threshold)}")
    for t in facts.tags:
        unit = f" {t.unit}" if t.unit else ""
        rules = f"; spc {','.join(t.rules)}" if t.rules else ""
        lines.append(
            f"tag {t.tag} = {fmt(t.value)}{unit}; normal {fmt(t.low)}-{fmt(t.high)}{unit}; "
            f"{t.outside}; {t.direction}{rules}"
        )
    for b in facts.breaks:
        lines.append(
            f"broken correlation {b.tag} ~ {b.other}: "
            f"{fmt(b.reference)} normally, {fmt(b.recent)} now"
        )
    for c in facts.causes:
        lines.append(f"cause {c.cause['en']}; check {c.check['en']}")
    for s in facts.similar:
        if s.note:
            lines.append(f"similar past event resolved: {s.note}")
    return lines


def build_prompt(facts: Facts, language: str = "en") -> str:
    """The whole prompt: instruction, facts, and the answer cue the model continues from."""
    return "\n".join([INSTRUCTION[language], *facts_lines(facts), ANSWER[language]]) + " "
