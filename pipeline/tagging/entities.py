"""Entities and PII in ASR text, and its redaction: the `callpipe_pii` spaCy component.

Rules, not a statistical model: there is no trained NER for call transcripts in
either language, and the things to find are mostly patterns. They are written for
text as Whisper writes it:

* numbers are digits or spoken digit words ("four five seven one"), broken by
  commas, dashes and spaces ("3, 3, 2, 2"), sometimes across turns;
* spelled names are single letters joined by dashes ("T -I -L -L -E", "-I -L -E")
  or spaced capitals ("T I L L E"); a spelling Whisper fused back into a word
  ("The IOLET" for V-I-O-L-E-T) is caught as a piece of a name found in the call;
* names are found after a cue ("my name is", "last name is", "this is", "I'm",
  "Mr."), then wherever they recur in the call.

A number's type comes from the words before it ("phone", "order number", "card"):
a card number must pass the Luhn check; an uncued run of 7+ digits is a phone
number (7, 10 or 11 digits) or an ID; a cued run of 3+ digits is what its cue says
(partial read-outs count). Amounts, dates and configured product names are
entities but not PII.

Each turn's Doc gets ``entities`` (dicts: type, text, start, end as character offsets
in the turn text, and pii: whether its type is redacted), ``redacted_text`` (PII replaced by ``[TYPE]``) and ``pii_found``.
``link_call`` then completes what one turn cannot see: numbers read out across
consecutive turns and names said in another turn.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from spacy.language import Language
from spacy.tokens import Doc

from .turnstate import state

PII_TYPES = ("CARD", "PHONE", "EMAIL", "ID", "ADDRESS", "NAME", "ACCOUNT", "ORDER", "CASE")
ENTITY_TYPES = PII_TYPES + ("MONEY", "DATE", "PRODUCT")

# --- numbers ------------------------------------------------------------------------------------

_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
    "零": "0", "〇": "0", "幺": "1", "一": "1", "二": "2", "两": "2", "三": "3", "四": "4",
    "五": "5", "六": "6", "七": "7", "八": "8", "九": "9",
}
_REPEAT = {"double": 2, "triple": 3}
# The lookaheads name the letters the words begin with: the scan then skips every other position
# at once (a third faster); they must list the first letter of any word added.
_ATOM = re.compile(
    r"\+?\d+|(?i:\b(?=[zotfsend])(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|double|triple)\b)|[零〇幺一二两三四五六七八九]"
)
# A cheap first look before the real scan: a digit, or a spoken digit among the words.
_DIGIT_CHAR = re.compile(r"[\d零〇幺一二两三四五六七八九]")
_SPOKEN_ATOMS = frozenset("zero oh one two three four five six seven eight nine double triple".split())
# What may stand between two pieces of one number: spaces, commas, dashes, dots, brackets.
_NUMBER_GAP = re.compile(r"[\s,.\-–/()]{0,4}")
_EDGE = re.compile(r"[\s,.;:!?\-–…。，、！？]*")

# Cues before a number, nearest wins. Checked on the 60 characters before it.
_CUES = [
    ("CARD", r"card|credit|debit|visa|master ?card|amex|卡号|银行卡|信用卡"),
    ("ID", r"social security|ssn|national (?:id|insurance)|passport|licen[cs]e|id number|tax id|身份证|证件"),
    ("ORDER", r"order|tracking|confirmation|reference|invoice|receipt|订单|单号|快递"),
    ("ACCOUNT", r"account|member(?:ship)?|policy|customer (?:id|number)|账号|账户|会员"),
    ("CASE", r"\bcase|ticket|claim|incident|工单"),
    ("PHONE", r"phone|number|cell|mobile|call (?:me|us|them|him|her)|reach (?:me|us|them)|extension|\bext\b|电话|手机|号码"),
]
# "order number" is an ORDER cue, not a PHONE one: the other cues swallow a following "number".
_CUE = re.compile(
    "|".join(
        f"(?P<{name}>(?:{pattern})" + (r"(?:\s+(?:number|no\.?|#|id|code))?)" if name != "PHONE" else ")")
        for name, pattern in _CUES
    ),
    re.I,
)
_CUE_WINDOW = 60

_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_CODE = re.compile(r"\b(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z0-9][A-Z0-9-]{4,}\b")  # e.g. AB-12345


def luhn_ok(digits: str) -> bool:
    """The card-number checksum: doubling every second digit from the right, the sum ends in 0."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits_of(atoms: Sequence[str]) -> str:
    out, repeat = [], 1
    for atom in atoms:
        key = atom.lower()
        if key in _REPEAT:
            repeat = _REPEAT[key]
            continue
        value = _DIGIT_WORDS.get(key, atom.lstrip("+"))
        out.append(value * repeat)
        repeat = 1
    return "".join(out)


class NumberRun(NamedTuple):
    start: int
    end: int
    digits: str
    at_start: bool  # nothing but spaces and punctuation before it in the turn
    at_end: bool  # ... or after it


# The PII component and the call-level pass both read a turn's runs.
@functools.lru_cache(maxsize=4096)
def number_runs(text: str) -> tuple[NumberRun, ...]:
    """Runs of digits and digit words in ``text``, in order."""
    if _DIGIT_CHAR.search(text) is None and _SPOKEN_ATOMS.isdisjoint(lower_words(text)):
        return ()
    runs: list[NumberRun] = []
    current: list[re.Match] = []

    def close():
        # "oh" and "double" only count inside a run ("oh" is usually just "oh").
        while current and current[0].group().lower() in ("oh", "double", "triple"):
            current.pop(0)
        while current and current[-1].group().lower() in ("oh", "double", "triple"):
            current.pop()
        if current:
            start, end = current[0].start(), current[-1].end()
            runs.append(NumberRun(
                start, end, _digits_of([m.group() for m in current]),
                _EDGE.fullmatch(text, 0, start) is not None, _EDGE.fullmatch(text, end) is not None,
            ))
        current.clear()

    for m in _ATOM.finditer(text):
        if current and not _NUMBER_GAP.fullmatch(text, current[-1].end(), m.start()):
            close()
        current.append(m)
    close()
    return tuple(runs)


def cue_before(text: str, start: int) -> str | None:
    """The type named by the cue nearest before ``start`` (within the window), if any."""
    found = None
    for m in _CUE.finditer(text, max(0, start - _CUE_WINDOW), start):
        found = m.lastgroup
    return found


MIN_DIGITS = 3  # fewer digits are never labelled, whatever the cue


def number_type(digits: str, cue: str | None) -> str | None:
    """What a run of digits is, given the cue before it; None when it is not worth a label."""
    n = len(digits)
    if n < MIN_DIGITS:
        return None
    if 13 <= n <= 19 and luhn_ok(digits):
        return "CARD"
    if cue in ("ORDER", "ACCOUNT", "CASE"):
        return cue
    if cue == "ID" and n >= 6:
        return "ID"
    if cue == "PHONE":
        return "PHONE"
    if cue == "CARD" and n >= 4:
        return "ID"  # a card number read out wrong (fails Luhn) still identifies someone
    if n >= 7:
        if n in (7, 10, 11) or (n == 12 and digits.startswith("86")):
            return "PHONE"
        return "ID"
    return None


# --- other patterns -------------------------------------------------------------------------------

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_SPOKEN_EMAIL = re.compile(
    r"(?i)\b[a-z0-9][\w.]*(?:\s+(?:dot|underscore)\s+\w+)*\s+at\s+\w+(?:\s+dot\s+\w+)*\s+dot\s+(?:com|net|org|edu|gov|co|io|uk|cn)\b"
)
# One letter (not part of a word), then 2+ more joined by dashes or dots: "T -I -L -L -E", "K.I.N.G".
_SPELLED = re.compile(
    r"(?<![\w'])-?[A-Za-z](?:\s*[-.]\s*[A-Za-z](?![\w'])){2,}"
    r"|(?<![\w'])[A-Z](?:\s[A-Z](?![\w'])){2,}"
)
# What every spelling holds (a dash or dot before a lone letter, or two spaced capitals):
# a quick scan, so the full pattern runs on the few turns that have it.
_MAY_SPELL = re.compile(r"[-.]\s*[A-Za-z](?![\w'])|[A-Z]\s[A-Z](?![\w'])")
_STREET = (
    r"street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|terrace|"
    r"circle|cir|highway|hwy|parkway|pkwy|square|sq|crescent|close"
)
_NUMBER_WORD = r"(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand)"
_ADDRESS = re.compile(
    rf"(?i)\b(?:\d{{1,6}}[a-z]?|{_NUMBER_WORD}(?:[\s-]+{_NUMBER_WORD}){{0,4}})"
    rf"\s+(?:[A-Za-z0-9'.-]+\s+){{0,3}}(?:{_STREET})\b\.?"
    r"(?:,?\s+(?:apartment|apt|suite|unit|flat)\.?\s*#?\s*\w+)?"
)
_ZH_ADDRESS = re.compile(r"[\u4e00-\u9fff]{2,12}(?:路|街|大道|巷|弄)[\d一二三四五六七八九十零〇百]+号(?:[\d一二三四五六七八九十零〇]+(?:室|楼|栋|单元))*")

_MONEY = re.compile(
    r"(?i)[$£€¥]\s?\d[\d,]*(?:\.\d+)?(?:\s?(?:k|million|billion|thousand|hundred))?"
    rf"|\b\d[\d,]*(?:\.\d+)?\s?(?:dollars?|bucks|cents?|euros?|pounds?|usd|rmb|yuan)\b"
    rf"|\b{_NUMBER_WORD}(?:[\s-]+(?:and\s+)?{_NUMBER_WORD}){{0,5}}\s+(?:dollars?|bucks|cents|euros?|pounds?)\b"
    r"|\d+(?:\.\d+)?\s?(?:元|块钱|块|美元)|[一二两三四五六七八九十百千万]+(?:元|块钱|块)"
)
_MONTHS = r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
_WEEKDAYS = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday"
# Three date patterns, each run only when one of its words is in the turn (see Detector.find).
_DATE_MONTH = re.compile(
    rf"(?i)\b(?:(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})\b(?:,?\s+\d{{4}})?)"
)
_DATE_DAY = re.compile(rf"(?i)\b(?:(?:next|last|this)\s+(?:{_WEEKDAYS}|week|month|year)|{_WEEKDAYS}|today|tomorrow|yesterday)\b")
_DATE_RELATIVE = re.compile(rf"(?i)\b(?:\d+|a|an|{_NUMBER_WORD})\s+(?:days?|weeks?|months?)\s+(?:ago|from now)\b")
_DATE_NUM = re.compile(r"\b(?:\d{1,2}/\d{1,2}(?:/\d{2,4})?|\d{4}-\d{2}-\d{2})\b")
_DATE_ZH = re.compile(r"\d{4}年\d{1,2}月(?:\d{1,2}[日号])?|\d{1,2}月\d{1,2}[日号]|[今明昨前后]天|下(?:个)?(?:周|星期|月)")

# Words (lower-cased) without which a pattern cannot match: checked before running it.
_WORD = re.compile(r"[a-z]+")
# Letters that case-blind patterns match as ASCII ones but lower() does not turn into them:
# the quick looks at a text's words see them as the patterns do.
_FOLD = str.maketrans({"\u0131": "i", "\u0130": "i", "\u017f": "s", "\u212a": "k"})  # ı İ ſ, Kelvin sign


# The detector and the number scan both look at a turn's words.
@functools.lru_cache(maxsize=4096)
def lower_words(text: str) -> frozenset[str]:
    """The text's words, lower-cased, as the case-blind patterns read them (see ``_WORD``)."""
    return frozenset(_WORD.findall(text.translate(_FOLD).lower()))
_DIGIT = re.compile(r"\d")
_HAS_CJK = re.compile(r"[\u4e00-\u9fff]")
_STREET_WORDS = frozenset(_STREET.split("|"))
_MONEY_WORDS = frozenset("dollar dollars bucks cent cents euro euros pound pounds usd rmb yuan".split())
_MONEY_CHARS = re.compile(r"[$£€¥元块]")
_MONTH_WORDS = frozenset(
    "jan january feb february mar march apr april may jun june jul july aug august sep sept september oct "
    "october nov november dec december".split()
)
_DAY_WORDS = frozenset(_WEEKDAYS.split("|") + ["today", "tomorrow", "yesterday", "week", "month", "year"])
_NUMBER_WORDS = frozenset(re.findall(r"[a-z]+", _NUMBER_WORD))

# Names: a cue, then 1-3 capitalised words. The cue is matched case-blind, the name is not:
# ASR capitalises names, and "this is important" must not yield a name.
_NAME_WORD = r"(?:(?:St|Saint|Mc|Mac|O|De|Van|Von)\.?\s?'?)?[A-Z][a-zA-Z'-]+"
_NAME_CUE = re.compile(  # the lookahead: the cues' first letters, as in _ATOM
    r"(?i:\b(?=[mhtflsnicd])(?:(?:my|his|her|the)\s+(?:(?:first|last|full|middle|sur)\s+)?name\s+is|(?:first|last|sur)\s*name\s+is"
    r"|name's|this\s+is|i'm|i\s+am|call\s+me|speaking\s+with|talking\s+to|(?:mr|mrs|ms|miss|dr)\b\.?))\s+"
    rf"(?P<name>{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})"
)
_ZH_NAME = re.compile(r"(?:我叫|我的名字是|名字叫|我姓)(?P<name>[\u4e00-\u9fff]{1,3}?)(?=[，。,.！!？?\s]|$|先生|女士|小姐)")
# Capitalised words that follow a cue but are not names (sentence starts, fillers, states).
_NOT_NAMES = frozenset(
    """i a an the it this that so okay ok yes yeah no not sorry just here there calling going very really
    fine good great glad happy sure actually well hello hi thank thanks my your our his her their
    and but or if when what why how who where which afraid looking trying wondering from with at in on
    for to of about also still already only now then again please customer agent manager service
    support team department mister miss sir madam ma'am calling""".split()
)


def _name_words(phrase: str) -> list[str]:
    words = phrase.split()
    kept = []
    for w in words:
        if w.strip(".,'").lower() in _NOT_NAMES:
            break
        kept.append(w)
    return kept


# The lower-cased words without one of which no name cue can match.
_NAME_CUE_WORDS = frozenset("name surname firstname lastname this i call speaking talking mr mrs ms miss dr".split())


def find_names(text: str, words: frozenset[str] | None = None) -> list[tuple[int, int]]:
    """Spans of names after a cue; ``words``: ``lower_words(text)``, if known."""
    spans = []
    if words is None:
        words = lower_words(text)
    cues = _NAME_CUE.finditer(text) if not _NAME_CUE_WORDS.isdisjoint(words) else ()
    for m in cues:
        words = _name_words(m.group("name"))
        if not words:
            continue
        start = m.start("name")
        end = start + len(" ".join(words))
        if text[start:end] != " ".join(words):  # the name spans odd whitespace: keep the words as written
            end = start + len(words[0])
        spans.append((start, end))
    for m in _ZH_NAME.finditer(text):
        spans.append((m.start("name"), m.end("name")))
    return spans


# --- the detector -----------------------------------------------------------------------------------

def _entity(kind: str, text: str, start: int, end: int) -> dict:
    return {"type": kind, "text": text[start:end], "start": start, "end": end}


def _overlaps(a: dict, spans: Iterable[dict]) -> bool:
    return any(a["start"] < b["end"] and b["start"] < a["end"] for b in spans)


class Detector:
    """Every entity in one turn's text; compiled once, shared by all turns."""

    def __init__(self, products: Sequence[str] = ()):
        names = sorted({p.strip() for p in products if p.strip()}, key=len, reverse=True)
        self.products = (
            re.compile(r"(?i)(?<!\w)(?:" + "|".join(re.escape(p) for p in names) + r")(?!\w)") if names else None
        )

    def find(self, text: str) -> list[dict]:
        found: list[dict] = []
        # The costly patterns run only when a word they need is there (most turns have none).
        words = lower_words(text)
        cjk = _HAS_CJK.search(text) is not None
        has_digit = _DIGIT.search(text) is not None

        def add(kind: str, start: int, end: int) -> None:
            e = _entity(kind, text, start, end)
            if not _overlaps(e, found):
                found.append(e)

        # Most specific first: a span already taken is not taken again.
        if "@" in text:
            for m in _EMAIL.finditer(text):
                add("EMAIL", m.start(), m.end())
        if "at" in words and "dot" in words:
            for m in _SPOKEN_EMAIL.finditer(text):
                add("EMAIL", m.start(), m.end())
        if has_digit:
            for m in _SSN.finditer(text):
                add("ID", m.start(), m.end())
        if not words.isdisjoint(_MONEY_WORDS) or _MONEY_CHARS.search(text):
            for m in _MONEY.finditer(text):
                add("MONEY", m.start(), m.end())
        if not words.isdisjoint(_STREET_WORDS) and (has_digit or not words.isdisjoint(_NUMBER_WORDS)):
            for m in _ADDRESS.finditer(text):
                add("ADDRESS", m.start(), m.end())
        if cjk:
            for m in _ZH_ADDRESS.finditer(text):
                add("ADDRESS", m.start(), m.end())
        for m in _CODE.finditer(text) if has_digit else ():
            cue = cue_before(text, m.start())
            if cue in ("ORDER", "ACCOUNT", "CASE", "ID"):
                add(cue, m.start(), m.end())
        for run in number_runs(text):
            if len(run.digits) < MIN_DIGITS:  # "one", "2": no cue to look for
                continue
            kind = number_type(run.digits, cue_before(text, run.start))
            if kind:
                add(kind, run.start, run.end)
        for m in _SPELLED.finditer(text) if _MAY_SPELL.search(text) else ():
            add("NAME", m.start(), m.end())
        for start, end in find_names(text, words):
            add("NAME", start, end)
        for pattern, wanted in (
            (_DATE_MONTH, not words.isdisjoint(_MONTH_WORDS)), (_DATE_DAY, not words.isdisjoint(_DAY_WORDS)),
            (_DATE_RELATIVE, "ago" in words or "now" in words), (_DATE_ZH, cjk), (_DATE_NUM, has_digit),
        ):
            if wanted:
                for m in pattern.finditer(text):
                    add("DATE", m.start(), m.end())
        if self.products is not None:
            for m in self.products.finditer(text):
                add("PRODUCT", m.start(), m.end())
        return sorted(found, key=lambda e: e["start"])


def redact(text: str, entities: Iterable[dict], pii_types: Iterable[str]) -> str:
    """``text`` with each PII entity replaced by ``[TYPE]``."""
    wanted = set(pii_types)
    out, pos = [], 0
    for e in sorted(entities, key=lambda e: e["start"]):
        if e["type"] not in wanted or e["start"] < pos:
            continue
        out.append(text[pos:e["start"]])
        out.append(f"[{e['type']}]")
        pos = e["end"]
    out.append(text[pos:])
    return "".join(out)


def _set_result(fields: dict, entities: list[dict], pii_types: Sequence[str]) -> None:
    """A turn's entities, PII flag and redacted text into its fields (turnstate.py)."""
    entities = [{**e, "pii": e["type"] in pii_types} for e in sorted(entities, key=lambda e: e["start"])]
    fields["entities"] = entities
    fields["pii_found"] = any(e["type"] in pii_types for e in entities)
    fields["redacted_text"] = redact(fields["text"], entities, pii_types)


# --- the call-level pass --------------------------------------------------------------------------

def _link_numbers(states: Sequence[dict], pii_types: Sequence[str]) -> set[int]:
    """Numbers read out across consecutive turns ("... is 3," / "3, 3," / "2, 2"): one number."""
    changed: set[int] = set()
    runs = [number_runs(fields["text"]) for fields in states]
    i = 0
    while i < len(states):
        if not runs[i] or not runs[i][-1].at_end:
            i += 1
            continue
        chain = [(i, runs[i][-1])]
        j = i + 1
        # Follow turns that start with a number; a turn that is only a number passes the chain on.
        while j < len(states) and runs[j] and runs[j][0].at_start:
            chain.append((j, runs[j][0]))
            if not (len(runs[j]) == 1 and runs[j][0].at_end):
                break
            j += 1
        if len(chain) > 1:
            first_doc, first = chain[0]
            digits = "".join(r.digits for _, r in chain)
            cue = cue_before(states[first_doc]["text"], first.start)
            read_out = any(r.at_start and r.at_end for _, r in chain)
            read_back = any(a.digits == b.digits for (_, a), (_, b) in zip(chain, chain[1:]))
            # Joining numbers across turns needs evidence: a cue ("their number is") or a turn
            # that is only digits; a number said back by the other party ("2017." / "2017 Ford")
            # is a repeat, not a continuation.
            kind = number_type(digits, cue) if (cue or read_out) and not read_back else None
            if kind in PII_TYPES:
                for k, run in chain:
                    fields = states[k]
                    e = _entity(kind, fields["text"], run.start, run.end)
                    kept = [x for x in fields["entities"] if not _overlaps(x, [e])]
                    _set_result(fields, kept + [e], pii_types)
                    changed.add(k)
        i = chain[-1][0] if len(chain) > 1 else i + 1
    return changed


def _link_names(states: Sequence[dict], pii_types: Sequence[str]) -> set[int]:
    """A name found in one turn is a name wherever it recurs in the call, with the surname after it
    ("Jack" -> "Jack Sattilly") and in spelled-and-fused form ("IOLET" inside "VIOLET")."""
    words: set[str] = set()
    for fields in states:
        for e in fields["entities"]:
            if e["type"] == "NAME":
                for w in re.findall(r"[A-Za-z][a-zA-Z'-]{2,}|[\u4e00-\u9fff]{2,}", e["text"]):
                    if w.lower() not in _NOT_NAMES and w.lower() not in ("st", "saint"):
                        words.add(w)
    if not words:
        return set()
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    recur = re.compile(rf"(?<![\w'])(?:{alternatives})(?:\s+{_NAME_WORD})?(?![\w'])")
    fused = [w.upper() for w in words if w.isascii()]
    caps = re.compile(r"(?<![\w'])[A-Z]{3,}(?![\w'])")
    changed: set[int] = set()
    for k, fields in enumerate(states):
        new = []
        text = fields["text"]
        for m in recur.finditer(text):
            tail = m.group()[len(m.group().split()[0]):].strip()
            end = m.end() if tail and tail.lower() not in _NOT_NAMES else m.start() + len(m.group().split()[0])
            new.append(_entity("NAME", text, m.start(), end))
        for m in caps.finditer(text):
            # A spelling fused back into one word may lose a letter or two to the word before it.
            if any(m.group() in w and len(m.group()) >= len(w) - 2 for w in fused):
                new.append(_entity("NAME", text, m.start(), m.end()))
        new = [e for e in new if not _overlaps(e, fields["entities"])]
        if new:
            _set_result(fields, list(fields["entities"]) + new, pii_types)
            changed.add(k)
    return changed


def link_call(docs: Sequence[Doc], pii_types: Sequence[str] | None = None) -> None:
    """Complete the per-turn results with what only the whole call shows (in place)."""
    states = [state(doc) for doc in docs]  # the turns' fields (turnstate.py)
    if pii_types is None:
        pii_types = states[0]["pii_types"] if states else PII_TYPES
    _link_numbers(states, pii_types)
    _link_names(states, pii_types)


class PiiComponent:
    version = "rules-1"

    def __init__(self, name: str, products: Sequence[str], pii_types: Sequence[str]):
        self.name = name
        self.detector = Detector(products)
        self.pii_types = tuple(t.upper() for t in pii_types)

    def __call__(self, doc: Doc) -> Doc:
        fields = state(doc)
        fields["pii_types"] = self.pii_types
        _set_result(fields, self.detector.find(fields["text"]), self.pii_types)
        return doc


@Language.factory("callpipe_pii", default_config={"products": [], "pii_types": [t.lower() for t in PII_TYPES]})
def make_pii_component(nlp: Language, name: str, products: list[str], pii_types: list[str]) -> PiiComponent:
    return PiiComponent(name, products, pii_types)
