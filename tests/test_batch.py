"""The nightly batch on real audio: incremental, kill-safe, interruptible, locked, isolating bad files."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.batch import RunLock
from pipeline.executors import _init_worker_in_process, _process_one
from pipeline.cli import main
from pipeline.config import Config
from pipeline.inputs import CallInput
from pipeline.sequences import BETWEEN_TURNS_BASE

from .audio_util import call_excerpt, interleave, write_audio, write_excerpt, write_excerpts

ROOT = Path(__file__).resolve().parent.parent
# Six distinct stretches of the real call, each with both parties speaking.
EXCERPTS = [(0, 12), (44, 58), (140, 152), (200, 214), (213, 226), (228, 244)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return write_excerpts(tmp_path_factory.mktemp("clips"), EXCERPTS)


def _db(out: Path) -> sqlite3.Connection:
    return sqlite3.connect(out / "callpipe.sqlite")


def _last_summary(out: Path) -> dict:
    return json.loads(_db(out).execute("SELECT summary_json FROM runs ORDER BY run_id DESC LIMIT 1").fetchone()[0])


def _assert_each_call_stored_once(out: Path, expected: int) -> None:
    db = _db(out)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = [r[0] for r in db.execute("SELECT call_id FROM calls")]
    assert len(ids) == expected == len(set(ids))
    sources = [r[0] for r in db.execute("SELECT source FROM calls")]
    assert len(set(sources)) == expected
    for call_id in ids:
        turns = db.execute("SELECT COUNT(*) FROM turns WHERE call_id = ?", (call_id,)).fetchone()[0]
        tags = db.execute("SELECT COUNT(*) FROM tags WHERE call_id = ?", (call_id,)).fetchone()[0]
        # One event per turn; holds and interruptions come as extra events between them.
        events = db.execute("SELECT COUNT(*) FROM events WHERE call_id = ? AND event_index < ?", (call_id, BETWEEN_TURNS_BASE)).fetchone()[0]
        analyses = db.execute("SELECT COUNT(*) FROM analyses WHERE call_id = ?", (call_id,)).fetchone()[0]
        assert turns == tags == events and analyses == 1
        record = json.loads((out / "calls" / f"{call_id}.json").read_text())
        assert len(record["turns"]) == turns


def test_rerun_does_no_work_force_and_config_changes_redo(clips, tmp_path):
    out = tmp_path / "out"
    two = [str(clips / "clip0.wav"), str(clips / "clip1.wav")]
    assert main(["run", *two, "--out", str(out), "--no-report"]) == 0
    assert _last_summary(out)["processed"] == 2
    assert main(["run", *two, "--out", str(out), "--no-report"]) == 0
    assert _last_summary(out)["processed"] == 0 and _last_summary(out)["skipped_unchanged"] == 2
    assert main(["run", *two, "--out", str(out), "--no-report", "--force"]) == 0
    assert _last_summary(out)["processed"] == 2
    assert main(["run", *two, "--out", str(out), "--no-report", "--set", "scoring.silence_threshold=3.0"]) == 0
    assert _last_summary(out)["processed"] == 2
    _assert_each_call_stored_once(out, 2)


def test_duplicate_content_is_processed_once(clips, tmp_path):
    copy = tmp_path / "copy of clip0.wav"
    copy.write_bytes((clips / "clip0.wav").read_bytes())
    out = tmp_path / "out"
    assert main(["run", str(clips / "clip0.wav"), str(copy), "--out", str(out), "--no-report"]) == 0
    summary = _last_summary(out)
    assert summary["processed"] == 1 and summary["duplicates"] == 1


def _start(args, out):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", *args, "--out", str(out), "--no-report"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _wait_for_ok_lines(proc, count, timeout=240):
    seen = 0
    deadline = time.time() + timeout
    lines = []
    while seen < count and time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        seen += line.startswith("ok ")
    return seen, lines


def test_sigkill_at_several_points_then_rerun_stores_every_call_once(clips, tmp_path):
    out = tmp_path / "out"
    # 1: killed while starting up, before any call is stored.
    proc = _start([str(clips)], out)
    time.sleep(1.0)
    proc.kill()
    proc.wait()
    # 2 and 3: killed right after the first and the second call of a run were stored.
    for stored_before_kill in (1, 2):
        proc = _start([str(clips)], out)
        seen, lines = _wait_for_ok_lines(proc, stored_before_kill)
        assert seen == stored_before_kill, "".join(lines)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # The re-run completes the batch.
    proc = _start([str(clips)], out)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    _assert_each_call_stored_once(out, len(EXCERPTS))
    assert _last_summary(out)["skipped_unchanged"] >= 3


def test_sigterm_stops_after_the_current_call_and_says_how_to_resume(clips, tmp_path):
    out = tmp_path / "out"
    proc = _start([str(clips)], out)
    seen, lines = _wait_for_ok_lines(proc, 1)
    assert seen == 1, "".join(lines)
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, rest
    assert "run the same command again to resume" in rest
    stored = _db(out).execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    assert 1 <= stored < len(EXCERPTS)
    assert _last_summary(out)["interrupted"] is True
    assert main(["run", str(clips), "--out", str(out), "--no-report"]) == 0
    _assert_each_call_stored_once(out, len(EXCERPTS))


def test_a_second_run_on_the_same_directory_is_refused(clips, tmp_path, capsys):
    out = tmp_path / "out"
    with RunLock(out):
        code = main(["run", str(clips / "clip0.wav"), "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "another callpipe run" in err and str(out) in err


def test_two_workers_give_the_same_results_as_one(clips, tmp_path):
    files = [str(clips / f"clip{i}.wav") for i in (2, 3, 4)]
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["run", *files, "--out", str(one), "--no-report"]) == 0
    assert main(["run", *files, "--out", str(two), "--no-report", "--workers", "2"]) == 0
    query = "SELECT call_id, turn_index, role, text FROM turns ORDER BY call_id, turn_index"
    assert _db(one).execute(query).fetchall() == _db(two).execute(query).fetchall()


def _wav_with_header(path: Path, fmt_tag: int, channels: int, rate: int, bits: int, data: bytes) -> Path:
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * channels * bits // 8, channels * bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_bad_inputs_are_recorded_and_good_ones_succeed(clips, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    (src / "empty.wav").write_bytes(b"")
    _wav_with_header(src / "zero_length.wav", 1, 1, 8000, 16, b"")
    (src / "truncated.flac").write_bytes((ROOT / "audio_samples" / "jfk.flac").read_bytes()[:3000])
    (src / "notes.wav").write_text("meeting notes, not audio\n" * 50)
    _wav_with_header(src / "odd_codec.wav", 0x1234, 1, 8000, 16, b"\x01\x02" * 8000)
    (src / "folder.wav").mkdir()
    six = np.tile(call_excerpt(0, 6)[:1], (6, 1))
    write_audio(src / "six_channels.wav", (interleave(six) * 32767).astype(np.int16), 16000, "pcm_s16le", "s16", "5.1")
    # These must succeed.
    (src / "with space ü.wav").write_bytes((clips / "clip5.wav").read_bytes())
    excerpt = call_excerpt(44, 58)
    write_audio(src / "float48k.wav", interleave(np.repeat(excerpt, 3, axis=1)).astype(np.float32), 48000, "pcm_f32le", "flt", "stereo")
    u8 = ((call_excerpt(140, 152)[:, ::2] + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    write_audio(src / "phone_8k_8bit.wav", interleave(u8), 8000, "pcm_u8", "u8", "stereo")
    write_audio(src / "silence.wav", np.zeros((1, 16000 * 8), np.int16), 16000)

    out = tmp_path / "out"
    assert main(["run", str(src), "--out", str(out)]) == 1
    db = _db(out)
    failed = {Path(s).name: r for s, r in db.execute("SELECT source, reason FROM errors")}
    assert set(failed) == {"empty.wav", "zero_length.wav", "truncated.flac", "notes.wav", "odd_codec.wav", "folder.wav", "six_channels.wav"}
    for name, reason in failed.items():
        assert name in reason and "\n" not in reason
    assert "empty file" in failed["empty.wav"]
    assert "zero-length" in failed["zero_length.wav"]
    assert "unsupported audio codec" in failed["odd_codec.wav"]
    assert "directory" in failed["folder.wav"]
    assert "6 channels" in failed["six_channels.wav"]
    stored = {Path(s).name: json.loads(a) for s, a in db.execute("SELECT c.source, a.analysis_json FROM calls c JOIN analyses a USING (call_id)")}
    assert set(stored) == {"with space ü.wav", "float48k.wav", "phone_8k_8bit.wav", "silence.wav"}
    assert stored["silence.wav"]["turn_count"] == 0 and "no_speech" in stored["silence.wav"]["flags"]
    for name in ("with space ü.wav", "float48k.wav", "phone_8k_8bit.wav"):
        assert stored[name]["turn_count"] > 0, name
    printed = capsys.readouterr().out
    assert "7 failed" in printed and "real-time factor" in printed


def test_six_channels_succeed_with_a_channel_map(tmp_path):
    six = np.zeros((6, 16000 * 12), np.float32)
    six[2], six[4] = call_excerpt(0, 12)
    path = write_audio(tmp_path / "six.wav", (interleave(six) * 32767).astype(np.int16), 16000, "pcm_s16le", "s16", "5.1")
    manifest = tmp_path / "calls.csv"
    manifest.write_text(f"call_id,audio_path,agent_channel,customer_channel,agent_id\nsix-1,{path},2,4,ag1\n")
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--out", str(out), "--no-report"]) == 0
    record = json.loads((out / "calls" / "six-1.json").read_text())
    assert record["metadata"]["agent_id"] == "ag1"
    assert record["turns"][0]["role"] == "agent" and record["turns"][0]["channel"] == 2


def test_a_file_deleted_after_planning_fails_with_a_reason(tmp_path):
    path = tmp_path / "gone.wav"
    write_excerpt(path, 0, 3)
    path.unlink()
    _init_worker_in_process(Config())
    status, reason = _process_one(CallInput(path, call_id="gone"), "0" * 64)
    assert status == "failed" and reason == f"{path}: file not found"


def test_local_workers_are_pinned_one_per_gpu_in_turn(monkeypatch):
    import dataclasses
    import multiprocessing

    from pipeline import executors
    from pipeline.config import Config

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    started = multiprocessing.get_context("spawn").Value("i", 0)
    assert [executors.pin_gpu(started, 2) for _ in range(3)] == [0, 1, 0]
    assert executors.os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    monkeypatch.setattr("pipeline.transcribe.base.cuda_device_counts", lambda: (3, 2))
    assert executors._local_gpus(Config()) == 3
    cpu = Config()
    cpu = dataclasses.replace(cpu, asr=dataclasses.replace(cpu.asr, device="cpu"))
    assert executors._local_gpus(cpu) == 0
