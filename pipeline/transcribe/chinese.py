"""Chinese script: Whisper writes Mandarin in traditional or simplified characters, call by call.

The tagging models and most mainland contact centres use simplified characters, so
Mandarin transcripts are converted with OpenCC (``callpipe[multilingual]``) unless
``asr.chinese_script = "as_heard"``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

from ..records import Transcript


@functools.lru_cache(maxsize=1)
def _converter() -> Callable[[str], str]:
    try:
        import opencc
    except ImportError:
        return lambda text: text
    return opencc.OpenCC("t2s").convert


def to_simplified(text: str) -> str:
    """Traditional characters as simplified; unchanged when OpenCC is not installed."""
    return _converter()(text)


def simplified_transcript(transcript: Transcript) -> Transcript:
    """The transcript with every segment's and word's text in simplified characters."""
    segments = tuple(
        dataclasses.replace(
            s,
            text=to_simplified(s.text),
            words=tuple(dataclasses.replace(w, text=to_simplified(w.text)) for w in s.words),
        )
        for s in transcript.segments
    )
    return dataclasses.replace(transcript, segments=segments)
