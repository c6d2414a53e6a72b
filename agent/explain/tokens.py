"""An answer as the guard reads it: one spelling, then words, identifiers, numbers, times. Pure.

An LLM answer (or whoever shaped its prompt) can hide a word from a plain comparison with
characters that render the same: full-width letters, Cyrillic or Greek look-alikes, zero-width
joiners, soft hyphens, typographic dashes, traditional Chinese forms. `normalise` maps all of
them onto one form before any check reads the text; `control_character` finds what no
published text may carry at all (C0/C1 controls, ANSI escapes, bidi overrides).

`tokenise` takes normalised text and returns its tokens in order, so that a number can be
bound to the tag or quantity it stands next to. Numbers are found however they are written:
glued to Chinese text, with thousands separators, in exponent form (`1.2e2`, `1.2x10^2`), in
hex, with their digits spaced out (`2 5 0` is 250), spelled out in English (`two hundred and
four point one`) or in Chinese (`二百零四点一`, `十二`). A number inside an identifier
(`F-101`, `extruder-1`) belongs to the identifier, which is checked as a whole.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

#: Invisible characters that only hide what they sit in: removed before any check.
ZERO_WIDTH = frozenset(
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d"
    "\u2060\u2061\u2062\u2063\u2064\ufeff\u3164\uffa0"
)
#: Characters that reorder or disguise rendered text: never in a published answer.
BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
ALLOWED_WHITESPACE = frozenset("\n\t")

_LOOK_ALIKES = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ӏ": "l",
    "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g", "һ": "h", "ү": "y", "ұ": "y",
    "А": "A", "В": "B", "Е": "E", "Ё": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
    "С": "C", "Т": "T", "Х": "X", "У": "Y", "Ѕ": "S", "І": "I", "Ї": "I", "Ј": "J", "Ԛ": "Q",
    "Ԝ": "W", "Һ": "H", "Ү": "Y",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "Ϲ": "C",
    # Latin and other look-alikes NFKC leaves alone
    "ı": "i", "ȷ": "j", "ɑ": "a", "ɩ": "i", "ʏ": "y", "ᴀ": "a", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e",
    "ᴋ": "k", "ᴍ": "m", "ᴏ": "o", "ᴘ": "p", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ᴢ": "z",
    "օ": "o", "ս": "u", "ց": "g", "ɪ": "i", "ʀ": "r", "ꜱ": "s", "ɢ": "g", "ʜ": "h", "ʟ": "l",
    "ɴ": "n",
    # dashes, quotes, slashes and spaces in their many forms
    "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "―": "-", "−": "-", "﹣": "-", "⁃": "-",
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "´": "'",
    "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"', "«": '"', "»": '"',
    "⁄": "/", "∕": "/", "∶": ":", "։": ":", "꞉": ":",
}  # fmt: skip
#: Traditional forms of the characters the guard's Chinese words use, onto the simplified.
_TRADITIONAL = dict(
    zip(
        "繞過關閉報聯鎖連靜強護緊鳴閘開斷險啟動號響機設備態體議種們個這說為無問題須處請確認則統"
        "應該當時實現狀異壓測溫電點數兩萬億貳陸與壞損錯誤覺導於閥蓋門鈕掉燈聲嗎麼後會裝置變偏"
        "離範圍較檢查線濾網堵塞產發現發準備換擋濾輸聽還過濾遞據記錄歷處態熱電偶圈齒輪軸承磨"
        "鬆傳感計稱喂凍結纜顯驅網關誤態調節風險簡單讀續維運轉況級別並複歸屬絕對確實跡規範",
        "绕过关闭报联锁连静强护紧鸣闸开断险启动号响机设备态体议种们个这说为无问题须处请确认则统"
        "应该当时实现状异压测温电点数两万亿贰陆与坏损错误觉导于阀盖门钮掉灯声吗么后会装置变偏"
        "离范围较检查线滤网堵塞产发现发准备换挡滤输听还过滤递据记录历处态热电偶圈齿轮轴承磨"
        "松传感计称喂冻结缆显驱网关误态调节风险简单读续维运转况级别并复归属绝对确实迹规范",
        strict=True,
    )
)
_SUPERSCRIPTS = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+", strict=True))
_FOLD = str.maketrans({**_LOOK_ALIKES, **_TRADITIONAL})


def strip_invisible(text: str) -> str:
    """`text` without zero-width characters, soft hyphens and other invisible joiners."""
    return "".join(c for c in text if c not in ZERO_WIDTH)


def control_character(text: str) -> str | None:
    """The first control character (C0, C1, DEL, ESC, bidi override) in `text`, named."""
    for c in text:
        if c in ALLOWED_WHITESPACE:
            continue
        if c in BIDI or unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn"):
            return f"U+{ord(c):04X}"
    return None


def _superscripts(text: str) -> str:
    # "1.2x10²" keeps its exponent: NFKC alone would turn it into "1.2x102".
    out = []
    previous_super = False
    for c in text:
        plain = _SUPERSCRIPTS.get(c)
        if plain is None:
            out.append(c)
            previous_super = False
            continue
        out.append(plain if previous_super else "^" + plain)
        previous_super = True
    return "".join(out)


def normalise(text: str) -> str:
    """The one form every check reads: invisible marks gone, NFKC, look-alikes folded.

    Examples
    --------
    >>> normalise("ｍｅｌｔ＿ｐｒｅｓｓｕｒｅ ２０４．１")
    'melt_pressure 204.1'
    >>> normalise("bураss the inter\\u200block")
    'bypass the interlock'
    >>> normalise("關閉報警"), normalise("1.2×10²")
    ('关闭报警', '1.2×10^2')
    """
    folded = unicodedata.normalize("NFKC", _superscripts(strip_invisible(text)))
    return folded.translate(_FOLD)


def look_alike(text: str, allowed: frozenset[str] = frozenset()) -> str | None:
    """The first character of `text` that poses as an ASCII letter, digit or underscore.

    Full-width digits are Chinese typing, not disguise, and pass; so do the characters of
    `allowed` (those the facts themselves contain, such as the `³` of a unit).
    """
    for c in text:
        if c.isascii() or c in allowed or "\uff10" <= c <= "\uff19":
            continue
        plain = normalise(c)
        if plain and plain.isascii() and (plain.isalnum() or plain == "_"):
            return f"{c!r} (U+{ord(c):04X}) posing as {plain!r}"
    return None


HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3007"
_ZH_CLOCK = "(?:\\d{1,2}|[零〇一二两三四五六七八九十]{1,3})"
_SCAN = re.compile(
    rf"""
    (?P<time>(?<![\d.:])\d{{1,2}}:\d{{2}}(?::\d{{2}})?(?![\d:])(?:\s*[ap]\.?m\b\.?)?)
  | (?P<hex>(?<![A-Za-z0-9_])0[xX][0-9A-Fa-f]+(?![A-Za-z0-9_]))
  | (?P<ident>[A-Za-z][A-Za-z0-9]*(?:[-_.'/][A-Za-z0-9]+)*)
  | (?P<zhtime>(?:上午|下午|晚上|凌晨|中午|早上)?\s*{_ZH_CLOCK}\s*[点时]\s*{_ZH_CLOCK}\s*分
        (?:\s*{_ZH_CLOCK}\s*秒)?)
  | (?P<number>(?:(?<![A-Za-z0-9_.)])[-+])?(?:\d{{1,3}}(?:,\d{{3}})+(?!\d)|\d+)(?:\.\d+)?
        (?:[eE][-+]?\d+)?(?:\s*[x×*]\s*10\s*\^\s*[-+]?\d+)?)
  | (?P<han>[{HAN}]+)
  | (?P<stop>[.!?;。！？；\n]+)
  | (?P<comma>[,、:，：()（）]+)
    """,
    re.VERBOSE,
)
_ZH_DIGITS = dict(
    zip("零〇一二两三四五六七八九", [0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9], strict=True)
)
_ZH_DIGITS |= dict(zip("壹贰叁肆伍陆柒捌玖", range(1, 10), strict=True))
_ZH_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_ZH_BIG = {"万": 10_000, "亿": 100_000_000}
_ZH_NUMERAL = re.compile(f"[{''.join(_ZH_DIGITS)}{''.join(_ZH_UNITS)}{''.join(_ZH_BIG)}点]+")
#: Numeral characters that are words here, not quantities (a/an, very, just in case...).
_ZH_NOT_NUMBERS = ("万一", "一一", "十分", "千万", "百分之")
_UNIT_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
)
_EN_UNITS = {w: i for i, w in enumerate(_UNIT_WORDS.split())}
_TEN_WORDS = "twenty thirty forty fifty sixty seventy eighty ninety"
_EN_TENS = {w: 20 + 10 * i for i, w in enumerate(_TEN_WORDS.split())}
_EN_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 10**9}
_EN_NUMBER_WORDS = {*_EN_UNITS, *_EN_TENS, *_EN_SCALES, "dozen"}
#: "one" is a pronoun after these and before "of": "the one", "one of the tags".
_PRONOUN_BEFORE = {"the", "this", "that", "which", "each", "any", "no", "every", "another"}


@dataclass(frozen=True)
class Token:
    """One piece of an answer: its kind, its text and where it is; numbers carry their value.

    kind: `word` (ASCII letters, lower case), `ident` (an identifier: has `_` or a digit),
    `number`, `time` (value = seconds since midnight, decimals = 0 for HH:MM, 1 for HH:MM:SS),
    `han` (Chinese text without its numerals), `stop` (end of a sentence), `comma`.
    """

    kind: str
    text: str
    start: int
    end: int
    value: float = 0.0
    decimals: int = 0


def _plain_number(text: str) -> tuple[float, int] | None:
    compact = re.sub(r"\s+", "", text).replace(",", "")
    head, *power = re.split(r"[x×*]10\^", compact, maxsplit=1)
    try:
        value = float(head) * (10.0 ** float(power[0]) if power else 1.0)
    except (ValueError, OverflowError):
        return None
    digits, _, exponent = head.lower().partition("e")
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    shift = int(float(exponent or 0) + float(power[0] if power else 0))
    return value, decimals - shift  # 2.04e2 is known to 0.01 x 10^2


def zh_number(text: str) -> tuple[float, int] | None:
    """A Chinese numeral's value and decimals: `二百零四点一` -> (204.1, 1); None if not one.

    Examples
    --------
    >>> zh_number("十二"), zh_number("一百"), zh_number("二〇四"), zh_number("一万二千")
    ((12.0, 0), (100.0, 0), (204.0, 0), (12000.0, 0))
    """
    whole, _, fraction = text.partition("点")
    if not whole or "点" in fraction or any(c not in _ZH_DIGITS for c in fraction):
        return None
    if all(c in _ZH_DIGITS for c in whole) and len(whole) > 1:  # read digit by digit
        value = float("".join(str(_ZH_DIGITS[c]) for c in whole))
    else:
        total = section = number = 0
        for c in whole:
            if c in _ZH_DIGITS:
                number = _ZH_DIGITS[c]
            elif c in _ZH_UNITS:
                section += (number or 1) * _ZH_UNITS[c]
                number = 0
            else:
                total += (section + number or 1) * _ZH_BIG[c]
                section = number = 0
        value = float(total + section + number)
    if fraction:
        value += float("0." + "".join(str(_ZH_DIGITS[c]) for c in fraction))
    return value, len(fraction)


def _han_tokens(text: str, start: int) -> list[Token]:
    out: list[Token] = []
    at = 0
    for m in _ZH_NUMERAL.finditer(text):
        run, a, b = m.group().strip("点"), m.start(), m.end()
        before, after = text[max(0, a - 1) : a], text[b : b + 2]
        word = text[a : a + 3]
        parsed = zh_number(run) if run else None
        if (
            parsed is None
            or before == "第"  # an ordinal
            or (len(run) == 1 and run in "一两")  # a/an, a couple
            or any(word.startswith(w) for w in _ZH_NOT_NUMBERS)
            or (run == "十" and after.startswith("分") and not after.startswith("分钟"))
        ):
            continue
        if a > at:
            out.append(Token("han", text[at:a], start + at, start + a))
        out.append(Token("number", run, start + a, start + b, *parsed))
        at = b
    if at < len(text):
        out.append(Token("han", text[at:], start + at, start + len(text)))
    return out


def _clock(text: str) -> tuple[float, int] | None:
    pm = re.search(r"p\.?m|下午|晚上", text) is not None
    parts = [int(p) if p.isdigit() else zh_number(p) for p in re.findall(
        r"\d+|[零〇一二两三四五六七八九十]+", text)]  # fmt: skip
    values = [int(p[0]) if isinstance(p, tuple) else p for p in parts if p is not None]
    if len(values) < 2:
        return None
    hours, minutes = values[0], values[1]
    seconds = values[2] if len(values) > 2 else 0
    if pm and hours < 12:
        hours += 12
    elif re.search(r"a\.?m", text) and hours == 12:
        hours = 0
    return float(hours * 3600 + minutes * 60 + seconds), int(len(values) > 2)


def _spelled(words: list[Token]) -> list[Token]:
    """Runs of English number words -> one number token each; other words unchanged."""
    out: list[Token] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w.kind != "word" or w.text not in _EN_NUMBER_WORDS:
            out.append(w)
            i += 1
            continue
        j, total, current, decimals, in_fraction = i, 0, 0, 0, False
        while j < len(words) and words[j].kind == "word":
            t = words[j].text
            if in_fraction and t in _EN_UNITS and _EN_UNITS[t] < 10:
                current = current * 10 + _EN_UNITS[t]
                decimals += 1
            elif in_fraction:
                break
            elif t in _EN_UNITS:
                current += _EN_UNITS[t]
            elif t in _EN_TENS:
                current += _EN_TENS[t]
            elif t == "dozen":
                current = (current or 1) * 12
            elif t in _EN_SCALES:
                total += (current or 1) * _EN_SCALES[t] if t != "hundred" else 0
                current = (current or 1) * 100 if t == "hundred" else 0
            elif t == "and" and j + 1 < len(words) and words[j + 1].text in _EN_NUMBER_WORDS:
                pass
            elif t == "point" and j + 1 < len(words) and words[j + 1].text in _EN_UNITS:
                in_fraction, total, current = True, total + current, 0
            else:
                break
            j += 1
        value = total + current / 10**decimals if in_fraction else float(total + current)
        before = words[i - 1].text if i else ""
        after = words[j].text if j < len(words) else ""
        if j == i + 1 and w.text == "one" and (before in _PRONOUN_BEFORE or after == "of"):
            out.append(w)  # "one of the tags" is not a quantity
        else:
            out.append(Token("number", " ".join(x.text for x in words[i:j]), w.start,
                             words[j - 1].end, float(value), decimals))  # fmt: skip
        i = max(j, i + 1)
    return out


def _merge_spaced(tokens: list[Token], text: str) -> list[Token]:
    """`2 5 0` and `1 234` are one number each: digits with only spaces between them."""
    out: list[Token] = []
    for t in tokens:
        prev = out[-1] if out else None
        if (
            prev is not None
            and t.kind == "number"
            and prev.kind == "number"
            and re.fullmatch(r"[-+]?\d+(?:[ \t]+\d+)*", prev.text) is not None
            and t.text.lstrip("+-")[:1].isdigit()
            and text[prev.end : t.start].strip(" \t") == ""
            and prev.end < t.start
        ):
            merged = _plain_number(prev.text + t.text.lstrip("+-"))
            if merged is not None:
                out[-1] = Token("number", text[prev.start : t.end], prev.start, t.end, *merged)
                continue
        out.append(t)
    return out


def tokenise(text: str) -> list[Token]:
    """The tokens of normalised `text`, in order (see `Token`)."""
    tokens: list[Token] = []
    for m in _SCAN.finditer(text):
        kind, piece, a = m.lastgroup or "", m.group(), m.start()
        if kind in ("time", "zhtime"):
            clock = _clock(piece)
            if clock is not None:
                tokens.append(Token("time", piece, a, m.end(), *clock))
        elif kind in ("number", "hex"):
            parsed = (float(int(piece, 16)), 0) if kind == "hex" else _plain_number(piece)
            if parsed is not None:
                tokens.append(Token("number", piece, a, m.end(), *parsed))
        elif kind == "ident":
            if "_" in piece or any(c.isdigit() for c in piece):
                tokens.append(Token("ident", piece, a, m.end()))
                continue
            for part in re.finditer(r"[A-Za-z]+(?:'[A-Za-z]+)?", piece):
                tokens.append(Token("word", part.group().lower(), a + part.start(),
                                    a + part.end()))  # fmt: skip
        elif kind == "han":
            tokens.extend(_han_tokens(piece, a))
        else:
            tokens.append(Token(kind, piece, a, m.end()))
    return _merge_spaced(_spelled(tokens), text)
