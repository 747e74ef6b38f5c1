"""English calls on the fast English-only model, calls in other languages on a multilingual one.

The embedded model (tiny.en) cannot tell that a call is in Mandarin: it writes English
words for any speech. When the multilingual model is installed, it listens to the first
speech of each channel (one encoder pass per channel) and the call goes to the model
that speaks its language. A language given by a manifest or by ``asr.language`` skips
the listening.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..records import Transcript
from .base import Transcriber, language_code


class LanguageRouter:
    def __init__(self, english: Transcriber, multilingual: Transcriber, configured_language: str = ""):
        self.english = english
        self.multilingual = multilingual
        self.configured_language = configured_language
        self.name = english.name
        # Both engines come from one config: same backend, device and precision.
        self.device = english.device
        self.compute_type = english.compute_type
        self.model_version = f"{english.model_version} (English), {multilingual.model_version} (other languages)"

    def transcribe(self, audio: np.ndarray, channel: int = 0) -> Transcript:
        return self.transcribe_channels([(audio, channel)])[0]

    def transcribe_channels(self, channels: Sequence[tuple[np.ndarray, int]], language: str | None = None) -> list[Transcript]:
        wanted = language or self.configured_language
        code, probability = (language_code(wanted), 1.0) if wanted else self.multilingual.detect_language(channels)
        model = self.english if code == "en" else self.multilingual
        return [dataclasses.replace(t, language_probability=probability) for t in model.transcribe_channels(channels, code)]
