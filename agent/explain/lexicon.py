"""The words an explanation may use: the configured language, and a vocabulary. Pure.

An answer is in the configured language by script (no Chinese in an English answer, mostly
Chinese in a Chinese one, no other script in either) and, for English, by its function words
(French or German written in Latin letters reads as foreign). Its words must come from a
small vocabulary of how alarms are described (the template's words and their kin) or from the
facts themselves (the parts of tag names, units, the offered causes and checks, operator
notes): a cause, part or action the facts do not hold has no words to be said with. Chinese
has no spaces, so a run of Chinese text must split, longest word first, into words of the
vocabulary or the facts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from agent.explain.tokens import HAN


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


EN_FUNCTION = _words(
    "a an the is are was were be been being has have had it its this that these those of on in "
    "at to from by for with since against than and or but so as not no now still while when "
    "which what where who there here then after before above below within over under up down "
    "into out about around near just only also very more most less much many some any each "
    "both either other another first second one same all"
)
#: Function words of other languages written in Latin letters that English never uses.
FOREIGN_FUNCTION = _words(
    "der das und ist nicht ein eine einen dem den des mit von zu auf für sich wird sind auch "
    "le la les est et une des du au aux dans pour avec pas sur sont ce cette qui que "
    "el los las es y una por para con del al se lo como pero su sus esta este muy "
    "il di che della gli sono questo non uno nel het een van niet zijn voor dat ook "
    "não uma com os em ao da do das dos"
)
EN_WORDS = _words(
    "anomaly anomalies anomalous alarm alarms event events line lines tag tags reading readings "
    "value values range ranges normal normally abnormal abnormally limit limits upper lower high "
    "low higher lower highest lowest threshold score scores scored spc chart charts rule rules "
    "violation violations broke broken break breaks breaking step steps stepped drift drifts "
    "drifting drifted rise rises rising rose risen fall falls falling fell fallen drop drops "
    "dropping dropped jump jumps jumped climb climbs climbing climbed increase increases "
    "increasing increased decrease decreases decreasing decreased move moves moving moved "
    "change changes changing changed shift shifts shifted stuck frozen flat flatline steady "
    "stable noisy noisier noise noisiness fluctuate fluctuates fluctuating fluctuation erratic "
    "reads read show shows showing showed shown stay stays staying stayed remain remains "
    "remaining remained sit sits sitting sat hold holds holding held keep keeps keeping kept "
    "likely probable probably possible possibly may might could would should must can cause "
    "causes caused causing reason suggest suggests suggesting suggested indicate indicates "
    "indicating indicated point points pointing consistent match matches matching matched fit "
    "fits known unknown failure failures mode modes pattern check checks checking compare "
    "confirm inspect inspecting look verify measure measured test please first next then "
    "sensor sensors wiring wire wires signal signals follow follows following followed "
    "correlation correlations correlated correlate usually usual typical typically together "
    "relationship similar past earlier previous previously before resolved resolve resolving "
    "fixed fix operator note notes noted record recorded since began begin started start "
    "starting ago seconds second s sec secs minute minutes moment time ongoing currently "
    "current now today recent recently last latest much far well slightly sharply suddenly "
    "sudden gradually gradual slowly slow quickly fast steadily clearly clear nearly about "
    "approximately roughly around almost exactly only just beyond outside inside past toward "
    "towards across between along against versus vs compared relative expected expect "
    "raised raise triggered trigger detected detect flagged flag went go goes going become "
    "becomes became get gets got getting make makes made making take taking taken give gives "
    "gave unit units level levels amount rate trend trends direction same different longer "
    "no not nor yet already again also too their there they them he she you your we our us "
    "i me my which whose what how why if whether because due so therefore thus hence result "
    "results resulted leading lead leads led while whereas however although though instead "
    "rather meanwhile also likewise overall main top most key primary secondary contributing "
    "contribution contributions contributor largest large small big size process machine "
    "plant equipment system "
    "reach reaches reached reaching min mins least spike spikes spiking isolated"
)
ZH_WORDS = _words(
    "异常 报警 产线 生产线 线 自 起 以来 秒 秒钟 分钟 小时 评分 "
    "得分 分数 阈值 当前 目前 现在 高于 低于 处于 正常 范围 之内 "
    "以内 之外 以外 阶跃 上升 下降 缓慢 快速 突然 逐渐 持续 读数 "
    "数值 值 冻结 不变 保持 波动 明显 大于 小于 超过 超出 可能 原因 "
    "建议 目录 没有 匹配 故障 模式 请 先 检查 传感器 接线 不再 跟随 "
    "变化 相关系数 相关性 相关 类似 相似 历史 事件 处理 记录 位号 "
    "信号 趋势 上限 下限 限值 升高 降低 上涨 下跌 增加 减少 偏高 "
    "偏低 偏离 停滞 卡住 不动 噪声 抖动 平稳 稳定 规则 违反 图 检测 "
    "发现 出现 发生 开始 已经 仍然 依然 此前 之前 之后 期间 大约 "
    "左右 约 时间 过程 设备 机器 操作员 尽快 及时 确认 核对 查看 "
    "排查 测量 对比 比较 同时 并且 而且 但是 因此 所以 由于 因为 "
    "导致 造成 引起 表明 说明 显示 提示 指向 符合 一致 也许 或者 "
    "以及 随着 之间 首要 主要 其次 最大 贡献 贡献度 第一 第二 第三 "
    "一个 两个 一种 一些 一下 已知 未知 结果 通常 一般 原本 本来 "
    "曾经 解决 处理过 方法 措施 单位 水平 程度 方向 相同 不同 更 最 "
    "较 很 压力 熔体 温度 流量 电流 电压 转速 速度 振动 产量 扭矩 "
    "液位 功率 负载 位置 重量 换网 前后 压差 信号 "
    "按 速率 达到 尖峰 孤立 规格 至少 "
)
ZH_CHARS = frozenset(
    "的了是在有和与及或也都已将被把从到为对由请先再并而且但其该此这那个些时后前中内外上下"
    "很较更最不无没未需要应可能会约之以于则即就又还仍至比向往让使得地着过呢吧等各每位号值"
    "高低大小多少快慢升降增减超出现起止自秒分次台条项处点它们其"
)
_PART = re.compile(r"[a-z]+")


def _script(c: str) -> str:
    if re.match(f"[{HAN}]", c):
        return "han"
    if c.isascii():
        return "latin" if c.isalpha() else "other"
    if c.isalpha() or unicodedata.category(c) in ("Lm", "Lo", "Mn", "Mc"):
        return "foreign"
    return "other"


def language_problem(text: str, prose: str, language: str, words: list[str]) -> str | None:
    """Why `text` is not in `language`, or None. `prose`: the text with the facts' own
    literals and identifiers blanked out; `words`: its English words."""
    for c in prose:
        if _script(c) == "foreign":
            return f"{c!r} is neither {'English' if language == 'en' else 'Chinese'} script"
    if language == "en":
        if any(_script(c) == "han" for c in text):
            return "Chinese text in an English answer"
        foreign = sum(w in FOREIGN_FUNCTION for w in words)
        english = sum(w in EN_FUNCTION for w in words)
        if foreign >= 2 and foreign >= english:
            return "reads as another language written in Latin letters"
        return None
    han = sum(_script(c) == "han" for c in prose)
    latin = sum(len(w) for w in words)
    if not any(_script(c) == "han" for c in text) or han < latin:
        return "not Chinese: more English than Chinese"
    return None


def _en_forms(word: str) -> list[str]:
    forms = [word]
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"),
                         ("ing", ""), ("ing", "e"), ("ly", ""), ("er", ""), ("d", "")):  # fmt: skip
        if word.endswith(suffix) and len(word) - len(suffix) >= 2:
            forms.append(word[: -len(suffix)] + repl)
    return forms


def words_of(texts: Iterable[str]) -> set[str]:
    """The lower-case ASCII words of `texts` (tag names split at `_`, `-` and digits)."""
    return {w for t in texts for w in _PART.findall(t.lower())}


def unknown_en_word(words: Iterable[str], allowed: set[str]) -> str | None:
    """The first English word outside the vocabulary and the facts' own words, or None."""
    for word in words:
        if not any(f in EN_WORDS or f in EN_FUNCTION or f in allowed for f in _en_forms(word)):
            return word
    return None


def unknown_zh_word(run: str, allowed: set[str]) -> str | None:
    """The first piece of a Chinese run that is no word of the vocabulary or the facts."""
    vocabulary = ZH_WORDS | allowed
    longest = max((len(w) for w in vocabulary), default=1)
    i = 0
    while i < len(run):
        for size in range(min(longest, len(run) - i), 1, -1):
            if run[i : i + size] in vocabulary:
                i += size
                break
        else:
            if run[i] not in ZH_CHARS and run[i] not in vocabulary:
                return run[i : i + 4]
            i += 1
    return None


def zh_words_of(texts: Iterable[str]) -> set[str]:
    """The Chinese runs of `texts` and their pieces, as vocabulary (an offered cause's words)."""
    found: set[str] = set()
    for text in texts:
        for run in re.findall(f"[{HAN}]+", text):
            found.add(run)
            found.update(run[i : i + 2] for i in range(len(run) - 1))
            found.update(run)
    return found
