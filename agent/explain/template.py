"""Facts into words: the template explainer, and the LLM's prompt. Pure.

The template (the default, always available, deterministic) says in 2-4 short sentences what
happened (line, since when, score against threshold), how the top tags moved against their
normal range, the likely cause from the site catalogue with the check to make, and a
correlation break or a similar past event with the operator's note. English and Chinese.

`build_prompt` gives the LLM the same facts as compact text and nothing else; distillation
(`lineside-export distil`) trains on exactly these prompts, so the two never drift apart.
"""

from __future__ import annotations

from agent.explain.facts import Facts, TagFact, clock, fmt, fmt_minutes

LANGUAGES = ("en", "zh")

_DIRECTION = {
    "en": {
        "step-up": "after a step up",
        "step-down": "after a step down",
        "drift-up": "drifting up",
        "drift-down": "drifting down",
        "stuck": "stuck at the same reading",
        "noisy": "much noisier than normal",
        "spikes": "with isolated spikes",
        "steady": "steady",
    },
    "zh": {
        "step-up": "阶跃上升",
        "step-down": "阶跃下降",
        "drift-up": "缓慢上升",
        "drift-down": "缓慢下降",
        "stuck": "读数冻结不变",
        "noisy": "波动明显大于正常",
        "spikes": "出现孤立尖峰",
        "steady": "平稳",
    },
}
_WHERE = {
    "en": {"above": "above", "below": "below", "within": "within"},
    "zh": {"above": "高于", "below": "低于", "within": "处于"},
}


def _range(t: TagFact) -> str:
    unit = f" {t.unit}" if t.unit else ""
    return f"{fmt(t.low)}–{fmt(t.high)}{unit}"


def _tag_en(t: TagFact) -> str:
    unit = f" {t.unit}" if t.unit else ""
    text = (
        f"{t.tag} is {fmt(t.value)}{unit}, {_WHERE['en'][t.outside]} its normal range {_range(t)}"
    )
    if t.direction != "steady":
        text += f", {_DIRECTION['en'][t.direction]}"
    if t.rules:
        text += f" (SPC: {', '.join(t.rules)})"
    return text


def _spans(t: TagFact, language: str) -> tuple[str, str]:
    """A forecast's time and its interval, in minutes, or seconds under a minute."""
    f = t.forecast
    assert f is not None
    if f.seconds < 60:
        word = "s" if language == "en" else "秒"
        shown = [f"{v:.0f}" for v in (f.seconds, f.low_s, f.high_s)]
    else:
        word = "min" if language == "en" else "分钟"
        shown = [fmt_minutes(v / 60) for v in (f.seconds, f.low_s, f.high_s)]
    open_end = f.high_s == float("inf")
    if language == "en":
        spread = f"at least {shown[1]} {word}" if open_end else (
            f"between {shown[1]} and {shown[2]} {word}")  # fmt: skip
    else:
        spread = f"至少 {shown[1]} {word}" if open_end else f"{shown[1]} 至 {shown[2]} {word}"
    return f"{shown[0]} {word}", spread


def _forecast_en(t: TagFact) -> str:
    """'barrel_temp reaches its upper limit 215.0 degC in about 12 min at the current rate'."""
    f = t.forecast
    assert f is not None
    unit = f" {t.unit}" if t.unit else ""
    when, spread = _spans(t, "en")
    kind = "spec " if f.limit.kind == "spec" else ""
    return (
        f"{t.tag} reaches its {f.limit.side} {kind}limit {fmt(f.limit.value)}{unit} in about "
        f"{when} at the current rate ({spread})"
    )


def _forecast_zh(t: TagFact) -> str:
    f = t.forecast
    assert f is not None
    unit = f" {t.unit}" if t.unit else ""
    side = "上限" if f.limit.side == "upper" else "下限"
    kind = "规格" if f.limit.kind == "spec" else ""
    when, spread = _spans(t, "zh")
    return f"按当前速率，{t.tag} 约 {when}后达到{kind}{side} {fmt(f.limit.value)}{unit}（{spread}）"


def _tag_zh(t: TagFact) -> str:
    unit = f" {t.unit}" if t.unit else ""
    text = f"{t.tag} 当前 {fmt(t.value)}{unit}，{_WHERE['zh'][t.outside]}正常范围 {_range(t)}"
    if t.direction != "steady":
        text += f"，{_DIRECTION['zh'][t.direction]}"
    if t.rules:
        text += f"（SPC：{'、'.join(t.rules)}）"
    return text


def _en(f: Facts) -> list[str]:
    what = "Anomaly" if f.kind == "anomaly" else "SPC alarm"
    head = f"{what} on line {f.line} since {clock(f.start)} ({fmt(f.duration_s)} s)"
    if f.score is not None and f.threshold is not None:
        head += f": score {fmt(f.score)} against threshold {fmt(f.threshold)}"
    out = [head + "."]
    if f.tags:
        drifting = [_forecast_en(t) for t in f.tags[:2] if t.forecast is not None]
        out.append("; ".join([*(_tag_en(t) for t in f.tags[:2]), *drifting[:1]]) + ".")
    if f.causes:
        c = f.causes[0]
        out.append(f"Likely cause: {c.cause['en']}; {c.check['en']}.")
    else:
        first = f.tags[0].tag if f.tags else "the top tag"
        out.append(f"No known failure mode fits; check the sensor and wiring of {first} first.")
    if f.breaks:
        b = f.breaks[0]
        out.append(
            f"{b.tag} no longer follows {b.other} (correlation {fmt(b.reference)} normally, "
            f"{fmt(b.recent)} now)."
        )
    elif any(s.note for s in f.similar):
        s = next(s for s in f.similar if s.note)
        out.append(f"A similar past event was resolved with: {s.note}.")
    return out


def _zh(f: Facts) -> list[str]:
    what = "异常" if f.kind == "anomaly" else "SPC 报警"
    head = f"{what}：产线 {f.line} 自 {clock(f.start)} 起（{fmt(f.duration_s)} 秒）"
    if f.score is not None and f.threshold is not None:
        head += f"，评分 {fmt(f.score)}，阈值 {fmt(f.threshold)}"
    out = [head + "。"]
    if f.tags:
        drifting = [_forecast_zh(t) for t in f.tags[:2] if t.forecast is not None]
        out.append("；".join([*(_tag_zh(t) for t in f.tags[:2]), *drifting[:1]]) + "。")
    if f.causes:
        c = f.causes[0]
        cause, check = c.cause.get("zh", c.cause["en"]), c.check.get("zh", c.check["en"])
        out.append(f"可能原因：{cause}；建议{check}。")
    else:
        first = f.tags[0].tag if f.tags else "首要位号"
        out.append(f"目录中没有匹配的故障模式；请先检查 {first} 的传感器和接线。")
    if f.breaks:
        b = f.breaks[0]
        out.append(
            f"{b.tag} 不再跟随 {b.other} 变化（正常相关系数 {fmt(b.reference)}，"
            f"当前 {fmt(b.recent)}）。"
        )
    elif any(s.note for s in f.similar):
        s = next(s for s in f.similar if s.note)
        out.append(f"类似的历史事件处理记录：{s.note}。")
    return out


def render(facts: Facts, language: str = "en") -> str:
    """The facts as 2-4 short sentences in `language` (`en` or `zh`)."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    sentences = _en(facts) if language == "en" else _zh(facts)
    return ("" if language == "zh" else " ").join(sentences[:4])


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
        if t.forecast is not None:
            lines.append(f"forecast {_forecast_en(t)}")
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
