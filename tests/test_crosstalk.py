"""Echo of one party in the other's channel is removed; real speech on both channels stays."""

import numpy as np
import pytest

from pipeline.audio import SAMPLE_RATE
from pipeline.config import AsrConfig
from pipeline.crosstalk import remove_crosstalk
from pipeline.records import Segment, Transcript, Word
from pipeline.transcribe import load_transcriber

from .audio_util import call_excerpt


def _seg(channel, words):
    ws = tuple(Word(s, e, t, 0.9) for s, e, t in words)
    return Segment(channel=channel, start=ws[0].start, end=ws[-1].end, text=" ".join(w.text for w in ws), words=ws)


def _tone_level(db, seconds=4.0):
    rng = np.random.default_rng(0)
    return (10 ** (db / 20) * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


def test_a_fainter_copy_is_dropped_and_equal_loudness_is_kept():
    loud, faint = _tone_level(-20), _tone_level(-45)
    agent = Transcript((_seg(0, [(0.1, 0.4, "I'm"), (0.4, 0.9, "Michelle.")]),), "en")
    echo = Transcript((_seg(1, [(0.15, 0.45, "I'm"), (0.45, 0.95, "Michelle."), (2.0, 2.3, "Hi"), (2.3, 2.8, "there")]),), "en")
    out, report = remove_crosstalk({0: agent, 1: echo}, {0: loud, 1: faint})
    assert [w.text for s in out[1].segments for w in s.words] == ["Hi", "there"]
    assert out[0] == agent
    assert report.dropped_words == {1: 2}
    # Both parties loud: saying the same word at once is not echo.
    out, report = remove_crosstalk({0: agent, 1: echo}, {0: loud, 1: _tone_level(-20)})
    assert out[1] == echo and report.dropped_words == {}


def test_leading_echo_words_go_but_own_words_in_the_same_stretch_stay():
    loud, faint = _tone_level(-20), _tone_level(-45)
    agent = Transcript((_seg(0, [(0.0, 0.3, "how"), (0.3, 0.5, "can"), (0.5, 0.6, "I"), (0.6, 0.9, "help")]),), "en")
    customer = Transcript((_seg(1, [(0.6, 0.9, "help"), (1.0, 1.3, "my"), (1.3, 1.6, "car"), (1.6, 1.9, "broke"), (1.9, 2.2, "down")]),), "en")
    out, _ = remove_crosstalk({0: agent, 1: customer}, {0: loud, 1: faint})
    assert out[1].segments[0].text == "my car broke down"
    assert out[1].segments[0].start == 1.0


@pytest.fixture(scope="module")
def transcriber():
    return load_transcriber(AsrConfig(device="cpu", beam_size=1))


def test_real_echo_in_the_caller_channel_is_removed(transcriber):
    # The shipped call's first 20 s, with the agent leaking into the caller channel 25 dB down, 60 ms late.
    call = call_excerpt(0.0, 20.0).copy()
    delay = int(0.06 * SAMPLE_RATE)
    call[1, delay:] += call[0, :-delay] * 10 ** (-25 / 20)
    agent, caller = transcriber.transcribe_channels([(call[0], 0), (call[1], 1)])
    heard_before = " ".join(s.text for s in caller.segments).lower()
    assert "thank you for calling" in heard_before  # Whisper does transcribe the echo
    out, report = remove_crosstalk({0: agent, 1: caller}, {0: call[0], 1: call[1]})
    caller_text = " ".join(s.text for s in out[1].segments).lower()
    assert "thank you for calling" not in caller_text and "platinum" not in caller_text
    # The caller's own words (his voice, after the agent stopped) stay, "Michelle" included.
    assert "my name" in caller_text and "michelle" in caller_text
    assert out[0] == agent and report.dropped_words[1] >= 10


def test_the_untouched_call_loses_nothing(transcriber):
    call = call_excerpt(0.0, 20.0)
    agent, caller = transcriber.transcribe_channels([(call[0], 0), (call[1], 1)])
    _out, report = remove_crosstalk({0: agent, 1: caller}, {0: call[0], 1: call[1]})
    assert report.dropped_words == {}
