"""Remove the echo of one party that leaks, fainter, into the other party's channel.

On a 2-channel call, line echo or a speaker phone can put a quiet copy of the agent
into the customer channel (or the reverse); Whisper transcribes it and the customer
seems to say the agent's words. A word is an echo when the other channel has the
same word at the same time (within ``max_offset`` seconds) and is louder by at least
``margin_db`` over that stretch. Two parties who really say the same word together
("okay") are each loud on their own channel, so the level test keeps both.

Within each stretch of speech (words separated by pauses under ``PIECE_PAUSE``), a
stretch that is mostly echo is dropped whole; otherwise only its leading and trailing
echo words go, since an echo sits where the other party talks, at the edges of one's
own speech.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .records import Segment, Transcript, Word
from .transcribe.guards import normalize_token
from .turns import join_text

SAMPLE_RATE = 16000
PIECE_PAUSE = 0.5  # seconds: shorter pauses stay inside one stretch of speech
ECHO_SHARE = 0.5  # a stretch with at least this share of echo words is dropped whole


@dataclass(frozen=True)
class CrosstalkReport:
    dropped_words: dict[int, int]
    """Echo words removed, per channel."""
    dropped_text: dict[int, list[str]]


def level_db(samples: np.ndarray, start: float, end: float) -> float:
    i, j = int(max(0.0, start) * SAMPLE_RATE), int(max(start, end) * SAMPLE_RATE)
    piece = samples[i : max(j, i + 1)]
    if not piece.size:
        return -120.0
    return float(10 * np.log10(np.mean(np.square(piece, dtype=np.float64)) + 1e-12))


def echo_flags(
    words: Sequence[Word],
    channel_audio: np.ndarray,
    other_words: Sequence[Word],
    other_audio: np.ndarray,
    margin_db: float,
    max_offset: float,
) -> list[bool]:
    """For each word: is it a fainter copy of the same word on the other channel?"""
    others = [(normalize_token(w.text), w) for w in other_words]
    starts = np.array([w.start for _t, w in others]) if others else np.zeros(0)
    flags = []
    for word in words:
        token = normalize_token(word.text)
        flagged = False
        if token and others:
            lo = np.searchsorted(starts, word.start - max_offset - 5.0)
            for other_token, other in others[lo:]:
                if other.start > word.end + max_offset:
                    break
                overlaps = other.start <= word.end + max_offset and word.start <= other.end + max_offset
                if overlaps and other_token == token:
                    span = (min(word.start, other.start), max(word.end, other.end))
                    if level_db(other_audio, *span) - level_db(channel_audio, *span) >= margin_db:
                        flagged = True
                        break
        flags.append(flagged)
    return flags


def _keep_mask(words: Sequence[Word], flags: list[bool]) -> list[bool]:
    keep = [True] * len(words)
    piece: list[int] = []

    def close(piece: list[int]) -> None:
        if not piece:
            return
        if sum(flags[i] for i in piece) >= ECHO_SHARE * len(piece):
            for i in piece:
                keep[i] = False
            return
        for order in (piece, piece[::-1]):  # leading, then trailing echo words
            for i in order:
                if not flags[i]:
                    break
                keep[i] = False

    for i, word in enumerate(words):
        if piece and word.start - words[piece[-1]].end > PIECE_PAUSE:
            close(piece)
            piece = []
        piece.append(i)
    close(piece)
    return keep


def _rebuild(seg: Segment, words: Sequence[Word]) -> Segment:
    text = ""
    for w in words:
        text = join_text(text, w.text)
    return dataclasses.replace(seg, words=tuple(words), text=text, start=words[0].start, end=words[-1].end)


def remove_crosstalk(
    transcripts: Mapping[int, Transcript],
    audio: Mapping[int, np.ndarray],
    margin_db: float = 10.0,
    max_offset: float = 0.5,
) -> tuple[dict[int, Transcript], CrosstalkReport]:
    """Both channels' transcripts with the other party's echo removed (2-channel calls only)."""
    channels = sorted(transcripts)
    if len(channels) != 2:
        return dict(transcripts), CrosstalkReport({}, {})
    words_of = {ch: sorted((w for s in transcripts[ch].segments for w in s.words), key=lambda w: w.start) for ch in channels}
    out: dict[int, Transcript] = {}
    dropped: dict[int, int] = {}
    dropped_text: dict[int, list[str]] = {}
    for ch in channels:
        other = channels[1 - channels.index(ch)]
        segments = []
        for seg in transcripts[ch].segments:
            if not seg.words:
                segments.append(seg)
                continue
            flags = echo_flags(seg.words, audio[ch], words_of[other], audio[other], margin_db, max_offset)
            keep = _keep_mask(seg.words, flags)
            kept = [w for w, k in zip(seg.words, keep) if k]
            gone = [w.text for w, k in zip(seg.words, keep) if not k]
            if gone:
                dropped[ch] = dropped.get(ch, 0) + len(gone)
                dropped_text.setdefault(ch, []).append(" ".join(gone))
            if kept:
                segments.append(seg if len(kept) == len(seg.words) else _rebuild(seg, kept))
        out[ch] = dataclasses.replace(transcripts[ch], segments=tuple(segments))
    return out, CrosstalkReport(dropped, dropped_text)
