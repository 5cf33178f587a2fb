"""The length an instruction asks for — "a 300-word description", "no less than 2,000 words",
"约800字" — and a job's target: ``--words`` when given, else the instruction's, else a default.

Lengths are in LongBench-Write's units (English words, Chinese characters: see
:func:`lwlocal.write.words.count_words`). A floor ("at least N") is aimed a tenth above, a
ceiling ("no more than N") a tenth below, a range at its middle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

LARGEST = 10**9  # a number of words beyond this is no length ("a 10^400-word essay")

# A job's length when nobody names one, per mode: AgentWrite is for long documents, one pass
# for what a model writes in one answer.
DEFAULT_WORDS = {"agentwrite": 2000, "direct": 1000}
SOURCES = ("option", "instruction", "default")
FLOOR_AIM, CEILING_AIM = 1.1, 0.9

_ONES = {w: i for i, w in enumerate([
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen"])}
_TENS = {w: 10 * i for i, w in enumerate(
    ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], 2)}
_SCALES = {"hundred": 100, "thousand": 1000}
_SPELLED_WORD = "|".join([*_ONES, *_TENS, *_SCALES, "a", "and"])
_SPELLED = rf"(?:(?:{_SPELLED_WORD})[\s-]+)*(?:hundred|thousand)"
_DIGITS = r"\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?\s?[kK]\b|\d+"
_NUMBER = rf"(?:{_DIGITS}|{_SPELLED})"

_FLOOR_EN = (r"at\s+least|no\s+less\s+than|not\s+less\s+than|no\s+fewer\s+than|a\s+minimum\s+of|"
             r"minimum\s+of|more\s+than|over|upwards\s+of")
_CEILING_EN = (r"at\s+most|no\s+more\s+than|not\s+more\s+than|not\s+exceeding|up\s+to|under|"
               r"less\s+than|fewer\s+than|within|a\s+maximum\s+of|maximum\s+of|below")
_ABOUT_EN = r"about|around|approximately|roughly|approx\.?|some|exactly|in|of|~"
_PLAIN_EN = {"in", "of"}  # "in 200 words" asks for a length, "of 5,000-word reports" does not
_ENGLISH = re.compile(
    rf"(?:\b(?:(?P<floor>{_FLOOR_EN})|(?P<ceiling>{_CEILING_EN})|(?P<about>{_ABOUT_EN})))?\s*"
    rf"(?:between\s+)?(?P<n>{_NUMBER})(?P<plus>\+)?"
    rf"(?:\s*(?:-|–|—|to|and)\s*(?P<m>{_NUMBER}))?"
    rf"(?P<sep>[\s-]*)words?\b(?:\s+(?P<after>or\s+more|or\s+less|or\s+fewer|at\s+most|at\s+least|"
    rf"minimum|maximum|max|min))?",
    re.IGNORECASE)
# "word count of 800", "word limit: 500", "length of 1,200 words" (the last is caught above)
_WORD_COUNT = re.compile(rf"word\s+(?P<kind>count|limit)\s*(?:of|:|is|=)?\s*(?:about\s+)?"
                         rf"(?P<n>{_DIGITS})", re.IGNORECASE)

_ZH_DIGIT = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"两": 2, "〇": 0}
_ZH_SCALE = {"十": 10, "百": 100, "千": 1000, "万": 10000}
_ZH_NUMERALS = "零〇一二两三四五六七八九十百千万"
_ZH_NUMBER = rf"\d{{1,3}}(?:,\d{{3}})+|\d+(?:\.\d+)?万?|[{_ZH_NUMERALS}]*[百千万][{_ZH_NUMERALS}]*"
_CHINESE = re.compile(
    rf"(?P<floor>不少于|不低于|不下于|至少|最少|超过|多于|大于)?\s*"
    rf"(?P<about>约|大约|大概|左右为)?\s*(?P<n>{_ZH_NUMBER})"
    rf"(?:\s*(?:-|–|—|~|～|至|到)\s*(?P<m>{_ZH_NUMBER}))?\s*个?\s*(?:汉)?字(?!母|节|典|幕|体)"
    rf"(?P<after>以上|左右|上下|以内|以下|之内|内)?")
_CHINESE_COUNT = re.compile(
    rf"字数\s*(?:要求)?\s*(?:在|为|是|：|:|达到)?\s*(?P<floor>不少于|不低于|至少|超过)?"
    rf"(?P<ceiling>不超过|不多于|少于|控制在)?\s*(?P<n>{_ZH_NUMBER})")
_ZH_FLOOR_AFTER, _ZH_CEILING_AFTER = {"以上"}, {"以内", "以下", "之内", "内"}


@dataclass(frozen=True)
class RequestedLength:
    """A length found in an instruction: the target and the words it was read from."""

    words: int
    unit: str  # "words", or "characters" for a Chinese instruction
    phrase: str


@dataclass(frozen=True)
class Target:
    """A job's length and where it came from (one of ``SOURCES``)."""

    words: int
    source: str
    phrase: str | None = None

    def describe(self, mode: str) -> str:
        """One line saying where the length came from."""
        if self.source == "instruction":
            return f"{self.words:,} words, read from the instruction ('{self.phrase}')"
        if self.source == "default":
            return (f"no length in the instruction: {self.words:,} words, the {mode} default "
                    "({words} sets it)")
        return f"{self.words:,} words, as asked"


def _spelled(text: str) -> int | None:
    total, current = 0, 0
    for word in re.split(r"[\s-]+", text.lower()):
        if word in _ONES:
            current += _ONES[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "a":
            current += 1
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word == "thousand":
            total, current = total + max(current, 1) * 1000, 0
        elif word != "and":
            return None
    return total + current or None


def _chinese(text: str) -> int | None:
    if re.fullmatch(r"[\d.]+万", text):
        return round(float(text[:-1]) * 10000)
    total, section, digit = 0, 0, 0
    for char in text:
        if char in _ZH_DIGIT:
            digit = _ZH_DIGIT[char]
        elif char == "万":
            total, section, digit = (total + section + digit) * 10000, 0, 0
        else:
            section += max(digit, 1) * _ZH_SCALE[char]
            digit = 0
    return total + section + digit or None


def _number(text: str) -> int | None:
    text = text.strip()
    plain = text.replace(",", "").replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?[kK]?", plain):
        thousands = plain[-1] in "kK"
        value = Decimal(plain[:-1] if thousands else plain) * (1000 if thousands else 1)
        return round(value) if value <= LARGEST else None
    if re.search(f"[{_ZH_NUMERALS}]", text):
        return _chinese(text)
    return _spelled(text)


def _aim(low: int, high: int | None, floor: bool, ceiling: bool) -> int:
    if high is not None:
        return round((low + high) / 2)
    if floor:
        return round(low * FLOOR_AIM)
    if ceiling:
        return round(low * CEILING_AIM)
    return low


def _candidates(instruction: str) -> list[tuple[bool, int, RequestedLength]]:
    """(said as a request, position, length) for each length phrase in ``instruction``."""
    found = []
    for match in _ENGLISH.finditer(instruction):
        n, m = _number(match["n"]), match["m"] and _number(match["m"])
        after = (match["after"] or "").lower()
        if not n or (match["m"] and not m):
            continue
        floor = bool(match["floor"] or match["plus"]) or after in {"or more", "at least",
                                                                   "minimum", "min"}
        ceiling = bool(match["ceiling"]) or after in {"or less", "or fewer", "at most",
                                                      "maximum", "max"}
        about = (match["about"] or "").lower()
        said = about and not (about in _PLAIN_EN and "-" in match["sep"])
        requested = bool(floor or ceiling or said or m)
        found.append((requested, match.start(), RequestedLength(
            _aim(n, m or None, floor, ceiling), "words", match[0].strip())))
    for match in _WORD_COUNT.finditer(instruction):
        n = _number(match["n"])
        if n:
            limit = match["kind"].lower() == "limit"
            found.append((True, match.start(), RequestedLength(
                _aim(n, None, False, limit), "words", match[0].strip())))
    for match in _CHINESE.finditer(instruction):
        n, m = _number(match["n"]), match["m"] and _number(match["m"])
        if not n or (match["m"] and not m):
            continue
        after = match["after"] or ""
        floor = bool(match["floor"]) or after in _ZH_FLOOR_AFTER
        ceiling = after in _ZH_CEILING_AFTER
        found.append((True, match.start(), RequestedLength(
            _aim(n, m or None, floor, ceiling), "characters", match[0].strip())))
    for match in _CHINESE_COUNT.finditer(instruction):
        n = _number(match["n"])
        if n and not re.match(r"\s*个?\s*字", instruction[match.end():]):  # "800字…": above
            found.append((True, match.start(), RequestedLength(
                _aim(n, None, bool(match["floor"]), bool(match["ceiling"])), "characters",
                match[0].strip())))
    return found


def requested_length(instruction: str) -> RequestedLength | None:
    """The length ``instruction`` asks for, or None. Where it names several ("summarise this
    5,000-word report in 200 words"), one said as a request (in, about, at least, a range)
    wins over a bare one, and the first of equals."""
    found = _candidates(instruction)
    if not found:
        return None
    return min(found, key=lambda c: (not c[0], c[1]))[2]


def choose_target(instruction: str, words: int | None, mode: str) -> Target:
    """``words`` when given, else the length ``instruction`` asks for, else ``mode``'s
    default."""
    if words is not None:
        return Target(words, "option")
    asked = requested_length(instruction)
    if asked is not None:
        return Target(asked.words, "instruction", asked.phrase)
    return Target(DEFAULT_WORDS[mode], "default")
