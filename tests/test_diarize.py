"""Mono calls: speakers separated by voice, named agent/customer by their words."""

import dataclasses

import numpy as np
import pytest

from pipeline.audio import SAMPLE_RATE, decode
from pipeline.config import Config, DiarizeConfig
from pipeline.diarize import agent_log_odds, frame_features, load_role_model, separate_roles, viterbi
from pipeline.records import AGENT, CUSTOMER, UNKNOWN, Segment, Word
from pipeline.transcribe import load_transcriber
from pipeline.transcribe.call import transcribe_call
from pipeline.transcribe.evaluate import role_attribution
from pipeline.turns import build_turns

from .audio_util import call_excerpt
from .conftest import MONO_CALL


def test_role_models_load_safely_and_tell_agents_from_customers():
    model, version = load_role_model("roles-en")
    assert version.startswith("roles-en@sha256:")
    agent = ["Could you spell your last name for me, please?", "I'm sorry for the inconvenience, let me look that up for you."]
    customer = ["My car broke down two weeks after I bought it.", "I have been waiting for three hours and nobody answers."]
    odds = agent_log_odds(model, agent + customer + [""])
    assert min(odds[:2]) > max(odds[2:4]) and odds[4] == 0.0
    zh, _ = load_role_model("roles-en", language="zh")  # Mandarin calls get the Chinese model
    assert list(zh.classes_) == [AGENT, CUSTOMER]
    assert agent_log_odds(zh, ["您好，请您提供一下订单号，我们帮您查询。"])[0] > agent_log_odds(zh, ["我的网络一直断，怎么回事？"])[0]


def test_viterbi_changes_speaker_at_pauses_rather_than_mid_phrase():
    # Word 2 sounds slightly more like speaker 1; words 3-4 clearly are speaker 1.
    scores = np.array([[5, 0], [5, 0], [0, 0.5], [0, 5], [0, 5]], float)
    pause_before_3 = np.array([True, False, False, True, False])
    assert viterbi(scores, pause_before_3).tolist() == [0, 0, 0, 1, 1]
    pause_before_2 = np.array([True, False, True, False, False])
    assert viterbi(scores, pause_before_2).tolist() == [0, 0, 1, 1, 1]


def test_pitch_tracks_a_voice_like_tone():
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    for f0 in (120.0, 260.0):
        tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8)).astype(np.float32) * 0.1
        mfcc, log_f0, _energy = frame_features(tone)
        assert mfcc.shape == (100, 19)
        assert abs(np.exp(np.nanmedian(log_f0)) - f0) < 0.05 * f0


@pytest.fixture(scope="module")
def transcriber():
    return load_transcriber(Config().asr)


@pytest.mark.slow
def test_stereo_call_mixed_to_mono_gets_the_roles_of_its_channels(transcriber):
    cfg = Config()
    call = call_excerpt(0.0, 60.0)
    truth = transcribe_call(transcriber, [(call[0], 0, AGENT), (call[1], 1, CUSTOMER)], cfg)
    ref_words = [(w.start, w.end, truth.roles[s.channel]) for s in truth.segments for w in s.words]
    mono = ((call[0] + call[1]) * 0.5).astype(np.float32)
    heard = transcribe_call(transcriber, [(mono, 0, UNKNOWN)], cfg)
    assert set(heard.roles.values()) == {AGENT, CUSTOMER}
    turns = build_turns(heard.segments, heard.roles, cfg.turns.split_pause, cfg.turns.max_pause)
    assert turns[0].role == AGENT and "thank you for calling" in turns[0].text.lower()
    score = role_attribution(ref_words, turns, 60.0)
    assert score["right_role"] >= 0.9, score


@pytest.mark.slow
def test_real_mono_call_names_agent_and_customer(transcriber):
    cfg = Config()
    audio = decode(MONO_CALL).channels[0][: 60 * SAMPLE_RATE]
    heard = transcribe_call(transcriber, [(audio, 0, UNKNOWN)], cfg, agent_channel=1)
    turns = build_turns(heard.segments, heard.roles, cfg.turns.split_pause, cfg.turns.max_pause)
    assert heard.roles == {1: AGENT, 0: CUSTOMER}  # laid out like a stereo call with the agent on channel 1
    assert turns[0].role == AGENT and "thank you for calling" in turns[0].text.lower()
    violet = next(t for t in turns if "violet" in t.text.lower())
    assert violet.role == CUSTOMER
    assert heard.metadata["diarization"]["speakers"] == 2


def _segment(words):
    ws = tuple(Word(s, e, t, 0.9) for s, e, t in words)
    return Segment(channel=0, start=ws[0].start, end=ws[-1].end, text=" ".join(w.text for w in ws), words=ws)


def test_too_little_speech_or_no_role_model_leaves_roles_unknown(tmp_path, capsys):
    seg = _segment([(0.0, 0.4, "Hello"), (0.5, 0.9, "there")])
    audio = np.zeros(SAMPLE_RATE * 2, np.float32)
    out = separate_roles(audio, [seg], "en", DiarizeConfig())
    assert out.roles == {0: UNKNOWN} and out.segments == (seg,)
    words = [(i * 0.5, i * 0.5 + 0.4, f"word{i}") for i in range(20)]
    rng = np.random.default_rng(0)
    noise = (0.05 * rng.standard_normal(SAMPLE_RATE * 11)).astype(np.float32)
    out = separate_roles(noise, [_segment(words)], "en", dataclasses.replace(DiarizeConfig(), roles_model=str(tmp_path / "none.skops")))
    assert set(out.roles.values()) == {UNKNOWN}
    assert "role model not found" in capsys.readouterr().err
