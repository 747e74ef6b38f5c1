"""Keep Whisper's known failure modes out of the transcript, whichever backend ran.

- Silence: a segment whose no-speech probability is above ``no_speech_threshold``
  *and* whose average log-probability is below ``log_prob_threshold`` is dropped
  (Whisper's own rule; batched decoding does not apply it by itself).
- Non-speech: text with no letter or digit ("♪", "...") or only a bracketed sound
  description ("[Music]", "(applause)") is dropped: music and noise are not words.
- Loops: a phrase of 1-``MAX_PHRASE`` words repeated more than ``max_repeats`` times
  in a row is cut to its first occurrence, within a segment and across consecutive
  segments; a segment that still compresses too well (gzip ratio above
  ``compression_ratio_threshold``) is a loop the cut could not untangle and is dropped.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
import zlib
from collections.abc import Sequence

from ..records import Segment

MAX_PHRASE = 12
_ANNOTATION = re.compile(r"^\s*[\[\(\*♪♫#-]+[^\]\)]*[\]\)\*♪♫#]+\s*$")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclasses.dataclass(frozen=True)
class GuardSettings:
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    max_repeats: int = 3


def normalize_token(text: str) -> str:
    """Lower case, punctuation and symbols removed: 'Thank,' and 'thank' are the same word."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold() if unicodedata.category(ch)[0] in "LN")


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def is_silent(seg: Segment, s: GuardSettings) -> bool:
    return seg.no_speech_prob > s.no_speech_threshold and seg.avg_logprob < s.log_prob_threshold


def is_non_speech(text: str) -> bool:
    if not any(unicodedata.category(ch)[0] in "LN" for ch in text):
        return True
    return bool(_ANNOTATION.match(text))


def loop_cut(tokens: Sequence[str], max_repeats: int) -> list[bool]:
    """Which tokens to keep: runs of one phrase repeated more than ``max_repeats`` times keep one copy."""
    keep = [True] * len(tokens)
    i = 0
    while i < len(tokens):
        run_end = None
        longest = min(MAX_PHRASE, (len(tokens) - i) // (max_repeats + 1))
        for n in range(1, longest + 1):  # the shortest repeating phrase explains the run
            phrase = list(tokens[i : i + n])
            if not all(phrase):
                continue
            count = 1
            while list(tokens[i + count * n : i + (count + 1) * n]) == phrase:
                count += 1
            if count > max_repeats:
                run_end = i + count * n
                for j in range(i + n, run_end):
                    keep[j] = False
                break
        i = run_end if run_end is not None else i + 1
    return keep


def _join(pieces: Sequence[str]) -> str:
    text = ""
    for piece in pieces:
        if text and not (_CJK.match(piece[:1]) or _CJK.match(text[-1:])):
            text += " "
        text += piece
    return text


def _text_tokens(text: str) -> list[str]:
    """Whitespace words, or single characters for Chinese (written without spaces)."""
    out: list[str] = []
    for word in text.split():
        if _CJK.search(word):
            out.extend(ch for ch in word if not ch.isspace())
        else:
            out.append(word)
    return out


def cut_word_loops(seg: Segment, max_repeats: int) -> Segment:
    if seg.words:
        keep = loop_cut([normalize_token(w.text) for w in seg.words], max_repeats)
        if all(keep):
            return seg
        words = tuple(w for w, k in zip(seg.words, keep) if k)
        return dataclasses.replace(seg, words=words, text=_join([w.text for w in words]), end=words[-1].end)
    pieces = _text_tokens(seg.text)
    keep = loop_cut([normalize_token(p) for p in pieces], max_repeats)
    if all(keep):
        return seg
    return dataclasses.replace(seg, text=_join([p for p, k in zip(pieces, keep) if k]))


def _key(seg: Segment) -> str:
    return " ".join(normalize_token(t) for t in _text_tokens(seg.text))


_CJK_GAP = re.compile(r"(?<=[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef])\s+(?=[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef])")


def squeeze_cjk_spaces(text: str) -> str:
    """Chinese is written without spaces; Whisper's segment text sometimes has them between characters."""
    return _CJK_GAP.sub("", text)


def clean_segment(seg: Segment, settings: GuardSettings) -> Segment | None:
    """One segment with non-speech words and in-segment loops removed; None when nothing real is left."""
    if is_silent(seg, settings):
        return None
    if _CJK.search(seg.text):
        seg = dataclasses.replace(seg, text=squeeze_cjk_spaces(seg.text))
    words = tuple(w for w in seg.words if not is_non_speech(w.text))
    if seg.words and len(words) != len(seg.words):
        if not words:
            return None
        seg = dataclasses.replace(seg, words=words, text=_join([w.text for w in words]), start=words[0].start, end=words[-1].end)
    if is_non_speech(seg.text):
        return None
    seg = cut_word_loops(seg, settings.max_repeats)
    if compression_ratio(seg.text) > settings.compression_ratio_threshold:
        return None
    return seg


def apply_guards(segments: Sequence[Segment], settings: GuardSettings) -> tuple[Segment, ...]:
    """The segments of one channel, in time order, with silence, non-speech and loops removed."""
    cleaned = [c for c in (clean_segment(s, settings) for s in segments) if c is not None]
    kept: list[Segment] = []
    i = 0
    while i < len(cleaned):
        j = i + 1
        while j < len(cleaned) and _key(cleaned[j]) == _key(cleaned[i]):
            j += 1
        # A sentence said again once or twice is speech; more times in a row is a loop.
        kept.extend(cleaned[i : j] if j - i <= settings.max_repeats else cleaned[i : i + 1])
        i = j
    return tuple(kept)
