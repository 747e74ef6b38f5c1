"""Merge the channels' ASR segments into one time-ordered conversation of turns."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping

from .records import UNKNOWN, Segment, Turn

_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")


def join_text(left: str, right: str) -> str:
    """Join two pieces of transcript; Chinese characters are kept without spaces between them."""
    if not left:
        return right
    if not right:
        return left
    if _CJK.match(right[0]) or _CJK.match(left[-1]):
        return left + right
    return f"{left} {right}"


def split_at_pauses(seg: Segment, max_gap: float) -> list[Segment]:
    """Cut a segment where its words pause longer than ``max_gap``.

    Whisper segments can span half a minute of one channel while the other party
    speaks in the pauses; word times put each stretch of speech back in its place.
    """
    if len(seg.words) < 2:
        return [seg]
    pieces: list[list] = [[seg.words[0]]]
    for prev, word in zip(seg.words, seg.words[1:]):
        if word.start - prev.end > max_gap:
            pieces.append([])
        pieces[-1].append(word)
    if len(pieces) == 1:
        return [seg]
    out = []
    for words in pieces:
        text = ""
        for w in words:
            text = join_text(text, w.text)
        out.append(dataclasses.replace(seg, start=words[0].start, end=words[-1].end, text=text, words=tuple(words)))
    return out


def build_turns(segments: Iterable[Segment], roles: Mapping[int, str], split_pause: float, max_pause: float) -> tuple[Turn, ...]:
    """Order the stretches of speech by start time and merge consecutive ones of the same role.

    Segments are first cut at word pauses longer than ``split_pause``; two pieces of
    one role then merge when the gap between them is at most ``max_pause`` seconds
    and nobody else spoke in between (sorting guarantees the latter: another
    party's piece would sit between them).
    """
    pieces = [piece for seg in segments for piece in split_at_pauses(seg, split_pause)]
    ordered = sorted(pieces, key=lambda s: (s.start, s.end, s.channel))
    merged: list[dict] = []
    for seg in ordered:
        role = roles.get(seg.channel, UNKNOWN)
        last = merged[-1] if merged else None
        if last and last["role"] == role and seg.start - last["end"] <= max_pause:
            last["end"] = max(last["end"], seg.end)
            last["text"] = join_text(last["text"], seg.text)
            last["words"].extend(seg.words)
            continue
        merged.append({"role": role, "start": seg.start, "end": seg.end, "text": seg.text, "words": list(seg.words), "channel": seg.channel})
    return tuple(
        Turn(index=i, role=m["role"], start=m["start"], end=m["end"], text=m["text"], words=tuple(m["words"]), channel=m["channel"])
        for i, m in enumerate(merged)
    )
