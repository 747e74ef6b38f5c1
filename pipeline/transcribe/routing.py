"""English calls on the fast English-only model, calls in other languages on a multilingual one.

The embedded model (tiny.en) cannot tell that a call is in Mandarin: it writes English
words for any speech, but with little confidence (mean word probability 0.3-0.6 on the
Mandarin clips at hand, against 0.8-0.97 on English ones). So every call is first
transcribed in English; when the words come out less sure than
``asr.language_check_confidence``, the multilingual model listens to the opening speech
of the call (one encoder pass), and a call in another language is transcribed again by
it. English calls, most of a night's work, pay nothing for the check. A language given
by a manifest or by ``asr.language`` skips all this.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..records import Transcript
from .base import Transcriber, language_code


def word_confidence(transcripts: Sequence[Transcript]) -> float:
    """Mean probability of the words heard; 0 when there are none."""
    probabilities = [w.probability for t in transcripts for s in t.segments for w in s.words]
    return float(np.mean(probabilities)) if probabilities else 0.0


class LanguageRouter:
    def __init__(self, english: Transcriber, multilingual: Transcriber, configured_language: str = "", check_below: float = 0.7):
        self.english = english
        self.multilingual = multilingual
        self.configured_language = configured_language
        self.check_below = check_below
        self.name = english.name
        # Both engines come from one config: same backend, device and precision.
        self.device = english.device
        self.compute_type = english.compute_type
        self.model_version = f"{english.model_version} (English), {multilingual.model_version} (other languages)"

    def transcribe(self, audio: np.ndarray, channel: int = 0) -> Transcript:
        return self.transcribe_channels([(audio, channel)])[0]

    def transcribe_channels(self, channels: Sequence[tuple[np.ndarray, int]], language: str | None = None) -> list[Transcript]:
        wanted = language or self.configured_language
        if wanted:
            code = language_code(wanted)
            return (self.english if code == "en" else self.multilingual).transcribe_channels(channels, code)
        heard = self.english.transcribe_channels(channels, "en")
        if word_confidence(heard) >= self.check_below:
            return heard
        code, probability = self.multilingual.detect_language(channels)
        if code != "en":
            heard = self.multilingual.transcribe_channels(channels, code)
        return [dataclasses.replace(t, language_probability=probability) for t in heard]
