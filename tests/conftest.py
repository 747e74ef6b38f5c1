"""Shared fixtures: the shipped sample calls and one real end-to-end run reused across tests."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "audio_samples"
JFK = SAMPLES / "jfk.flac"
STEREO_CALL = SAMPLES / "aws_lca_call40_stereo.flac"
MONO_CALL = SAMPLES / "aws_pca_mono_call.wav"
MANDARIN = SAMPLES / "aishell_mandarin.wav"
MANDARIN_REFERENCE = "广州市房地产中介协会分析"  # AISHELL-1's human transcript


@pytest.fixture(scope="session")
def stereo_run(tmp_path_factory):
    """`callpipe run` on the real 2-channel call plus two bad files; shared by the e2e tests."""
    from pipeline.cli import main

    work = tmp_path_factory.mktemp("stereo_run")
    inputs = work / "in"
    inputs.mkdir()
    (inputs / "call.flac").symlink_to(STEREO_CALL)
    (inputs / "notes.wav").write_text("this is not audio\n")
    (inputs / "empty.mp3").write_bytes(b"")
    out = work / "out"
    code = main(["run", str(inputs), "--out", str(out)])
    return {"out": out, "code": code, "inputs": inputs}
