"""Silence, non-speech and repetition loops stay out of the transcript (real audio cases included)."""

import dataclasses

import numpy as np
import pytest

from pipeline.audio import SAMPLE_RATE, decode
from pipeline.config import AsrConfig
from pipeline.records import Segment, Word
from pipeline.transcribe import load_transcriber
from pipeline.transcribe.guards import GuardSettings, apply_guards, is_non_speech, loop_cut, normalize_token

from .audio_util import call_excerpt
from .conftest import MONO_CALL

# VAD off: the guards alone must keep silence and loops out (with VAD on, silence never reaches the model).
NO_VAD = AsrConfig(device="cpu", beam_size=1, vad_filter=False)


@pytest.fixture(scope="module")
def transcriber():
    return load_transcriber(NO_VAD)


@pytest.fixture(scope="module")
def unguarded():
    """The same engine with every guard switched off, to show what the guards remove."""
    return load_transcriber(dataclasses.replace(NO_VAD, no_speech_threshold=1.0, log_prob_threshold=-1e9, compression_ratio_threshold=1e9, max_repeats=10_000))


def _words(text: str, start: float = 0.0) -> tuple[Word, ...]:
    return tuple(Word(start + i * 0.3, start + i * 0.3 + 0.25, w, 0.9) for i, w in enumerate(text.split()))


def _seg(text: str, start: float = 0.0, **kw) -> Segment:
    words = _words(text, start)
    return Segment(channel=0, start=words[0].start, end=words[-1].end, text=text, words=words, **kw)


def test_a_phrase_looping_is_cut_to_one_copy_but_real_repetition_stays():
    tokens = [normalize_token(t) for t in "Thank you. Thank you. Thank you. Thank you. Thank you, bye.".split()]
    kept = [t for t, k in zip(tokens, loop_cut(tokens, 3)) if k]
    assert kept == ["thank", "you", "bye"]
    said = "no no no I said no".split()
    assert all(loop_cut(said, 3))


def test_the_same_sentence_many_times_in_a_row_keeps_its_first_copy():
    segs = [_seg("I will call you back.", start=5.0 * i) for i in range(6)] + [_seg("Goodbye now.", start=40.0)]
    out = apply_guards(segs, GuardSettings(max_repeats=3))
    assert [s.text for s in out] == ["I will call you back.", "Goodbye now."]
    twice = apply_guards(segs[:2], GuardSettings(max_repeats=3))
    assert len(twice) == 2


def test_silence_rule_and_non_speech_text():
    quiet = _seg("Thank you.", no_speech_prob=0.9, avg_logprob=-1.3)
    confident = _seg("Thank you.", no_speech_prob=0.9, avg_logprob=-0.2)
    music = _seg("♪ ♪", start=3.0)
    bracket = _seg("[Music]", start=5.0)
    out = apply_guards([quiet, confident, music, bracket], GuardSettings())
    assert out == (confident,)
    assert is_non_speech("(upbeat music)") and is_non_speech("...") and not is_non_speech("Okay.")


def test_real_line_silence_gives_no_text(transcriber, unguarded):
    # The caller channel of the shipped call before the caller speaks: 6 s of real line noise.
    silence = call_excerpt(0.0, 6.0)[1]
    assert transcriber.transcribe(silence).segments == ()
    quiet = load_transcriber(AsrConfig(device="cpu", beam_size=1))  # with VAD, as shipped
    assert quiet.transcribe(silence).segments == ()


def test_music_like_audio_gives_no_text(transcriber):
    # A plucked-string melody with harmonics (no voice): synthetic, as no music recording ships.
    t = np.arange(int(8 * SAMPLE_RATE)) / SAMPLE_RATE
    notes = [220.0, 277.2, 329.6, 440.0, 329.6, 277.2, 246.9, 293.7]
    music = np.zeros_like(t)
    for i, f0 in enumerate(notes):
        on = (t >= i) & (t < i + 1)
        decay = np.exp(-3 * (t[on] - i))
        music[on] = sum(np.sin(2 * np.pi * f0 * h * t[on]) / h for h in range(1, 6)) * decay
    music = (0.2 * music / np.abs(music).max()).astype(np.float32)
    assert transcriber.transcribe(music).segments == ()


@pytest.mark.slow
def test_real_repetition_loop_is_cut(transcriber, unguarded):
    # 30-60 s of the shipped mono call, decoded without VAD, greedy: tiny.en loops on "Okay." there.
    audio = decode(MONO_CALL).channels[0][30 * SAMPLE_RATE : 60 * SAMPLE_RATE]
    raw = " ".join(s.text for s in unguarded.transcribe(audio).segments)
    raw_tokens = [normalize_token(t) for t in raw.split()]
    assert raw_tokens.count("okay") > 20, raw  # the loop is really there
    guarded = transcriber.transcribe(audio).segments
    tokens = [normalize_token(w.text) for s in guarded for w in s.words]
    assert tokens.count("okay") <= 3
    assert all(loop_cut(tokens, 3))


def test_chinese_stays_characters_without_spaces():
    chars = "请问您贵姓" * 5 + "我姓王"
    words = tuple(Word(i * 0.2, i * 0.2 + 0.15, ch, 0.9) for i, ch in enumerate(chars))
    seg = Segment(channel=0, start=0.0, end=words[-1].end, text=chars, words=words)
    (out,) = apply_guards([seg], GuardSettings(max_repeats=3))
    assert out.text == "请问您贵姓我姓王"  # the looping question cut to one copy, no spaces put between characters
