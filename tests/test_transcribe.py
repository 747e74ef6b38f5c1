"""The embedded Whisper model on real speech."""

import pytest

from pipeline.audio import decode
from pipeline.config import AsrConfig
from pipeline.transcribe import load_transcriber, resolve_device

from .conftest import JFK


@pytest.fixture(scope="module")
def transcriber():
    return load_transcriber(AsrConfig(device="cpu"))


def test_jfk_words_with_timestamps_and_confidences(transcriber):
    audio = decode(JFK)
    transcript = transcriber.transcribe(audio.channels[0])
    text = " ".join(s.text for s in transcript.segments).lower()
    assert "ask not what your country can do for you" in text
    assert transcript.language == "en"
    words = [w for s in transcript.segments for w in s.words]
    assert len(words) >= 20
    assert all(0 <= w.start <= w.end <= 11.1 for w in words)
    assert all(a.start <= b.start for a, b in zip(words, words[1:]))
    for s in transcript.segments:
        assert s.avg_logprob < 0 and 0 <= s.no_speech_prob <= 1


def test_model_is_loaded_once_per_process(transcriber):
    assert load_transcriber(AsrConfig(device="cpu")) is transcriber
    assert transcriber.compute_type == "int8" and transcriber.device == "cpu"


def test_device_selection_honours_an_explicit_choice():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
