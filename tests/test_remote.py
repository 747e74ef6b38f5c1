"""Audio at object-store URLs on real fsspec filesystems, offline: file://, memory:// and, when
moto is installed, an S3 server on localhost that s3fs talks to as it would to AWS."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline import audio, remote
from pipeline.cli import main
from pipeline.inputs import CallInput, collect_inputs

from .audio_util import write_excerpts
from .conftest import JFK

fsspec = pytest.importorskip("fsspec")

EXTENSIONS = (".wav", ".flac")
EXCERPTS = [(0, 12), (44, 58)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return write_excerpts(tmp_path_factory.mktemp("remote_clips"), EXCERPTS)


@pytest.fixture(scope="module")
def local_run(clips, tmp_path_factory):
    """The clips run from their local paths: what a run over URLs must match."""
    out = tmp_path_factory.mktemp("remote_local") / "out"
    assert main(["run", str(clips), "--out", str(out), "--no-report"]) == 0
    return out


@pytest.fixture
def memory_fs():
    fs = fsspec.filesystem("memory")
    yield fs
    fs.store.clear()
    fs.pseudo_dirs[:] = [""]


@pytest.fixture(scope="module")
def s3(clips):
    """A bucket "calls" on a moto S3 server, with the clips under s3://calls/day1/."""
    s3fs = pytest.importorskip("s3fs")
    server_module = pytest.importorskip("moto.moto_server.threaded_moto_server")
    patch = pytest.MonkeyPatch()
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_EC2_METADATA_DISABLED": "true", "NO_PROXY": "127.0.0.1,localhost"}.items():
        patch.setenv(var, value)
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    patch.setitem(fsspec.config.conf, "s3", {"endpoint_url": f"http://{host}:{port}"})
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    fs.mkdir("calls")
    for clip in sorted(clips.iterdir()):
        fs.put_file(str(clip), f"calls/day1/{clip.name}")
    fs.pipe_file("calls/day1/notes.txt", b"not audio")
    try:
        yield fs
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        patch.undo()
        server.stop()


def _db(out: Path) -> sqlite3.Connection:
    return sqlite3.connect(out / "callpipe.sqlite")


def _turns(out: Path) -> list[tuple]:
    """Every stored turn keyed by the audio's content hash, so runs from different paths compare."""
    rows = _db(out).execute("SELECT c.audio_sha256, t.* FROM turns t JOIN calls c USING (call_id)").fetchall()
    return sorted((r[0], *r[2:]) for r in rows)


def _last_summary(out: Path) -> dict:
    return json.loads(_db(out).execute("SELECT summary_json FROM runs ORDER BY run_id DESC LIMIT 1").fetchone()[0])


# --- URLs as inputs ---------------------------------------------------------------------------------

def test_only_strings_with_a_protocol_are_urls():
    assert remote.is_url("s3://bucket/a.wav") and remote.is_url("simplecache::s3://b/a.wav") and remote.is_url("file:///tmp/a.wav")
    assert not remote.is_url("calls/a.wav") and not remote.is_url(Path("s3://bucket/a.wav")) and not remote.is_url("C:/a.wav")
    assert remote.pure("s3://bucket/day 1/a.b.wav").stem == "a.b" and remote.pure("s3://bucket/x.WAV").suffix == ".WAV"


def test_a_url_folder_lists_its_audio_recursively_and_in_order(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ("b/2.flac", "a.wav", ".hidden.wav", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    inputs, problems = collect_inputs([f"file://{tmp_path}/"], EXTENSIONS)
    assert problems == []
    assert [i.path for i in inputs] == [f"file://{tmp_path}/a.wav", f"file://{tmp_path}/b/2.flac"]


def test_a_manifest_at_a_url_resolves_relative_audio_beside_it(memory_fs):
    memory_fs.pipe("/m/calls.csv", b"audio_path,call_id,agent_id\nday1/a.wav,c1,ag7\ns3://other/b.wav,c2,\n/local/c.wav,c3,\n")
    inputs, problems = collect_inputs(["memory://m/calls.csv"], EXTENSIONS)
    assert problems == []
    assert [(i.path, i.call_id) for i in inputs] == [("memory://m/day1/a.wav", "c1"), ("s3://other/b.wav", "c2"), (Path("/local/c.wav"), "c3")]
    assert inputs[0].metadata == {"agent_id": "ag7"}


def test_a_local_manifest_may_list_urls(tmp_path):
    manifest = tmp_path / "calls.jsonl"
    manifest.write_text(json.dumps({"audio_path": "s3://bucket/a.wav", "agent_channel": 1}) + "\n")
    [item], problems = collect_inputs([manifest], EXTENSIONS)
    assert problems == [] and item == CallInput("s3://bucket/a.wav", agent_channel=1)


def test_unreachable_urls_are_one_line_problems(memory_fs):
    inputs, problems = collect_inputs(["memory://nowhere/", "memory://m/gone.csv", "nosuchproto://b/a.wav"], EXTENSIONS)
    assert inputs == []
    reasons = [p.reason for p in problems]
    assert reasons[0] == "memory://nowhere/: not found"
    assert reasons[1] == "memory://m/gone.csv: cannot read manifest (not found)"
    assert reasons[2].startswith("nosuchproto://b/a.wav: Protocol not known: nosuchproto")
    assert all("\n" not in r for r in reasons)


def test_without_the_extra_a_url_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)
    monkeypatch.setitem(sys.modules, "fsspec.core", None)
    _, [problem] = collect_inputs(["s3://bucket/day1/"], EXTENSIONS)
    assert problem.reason == "s3://bucket/day1/: reading URLs needs the optional filesystem extra: pip install 'callpipe[remote]'"
    with pytest.raises(audio.AudioError, match=r"^s3://bucket/a.wav: .*pip install 'callpipe\[remote\]'$"):
        audio.file_sha256("s3://bucket/a.wav")


def test_a_protocol_whose_package_is_missing_names_it(monkeypatch):
    from fsspec.registry import known_implementations

    monkeypatch.setitem(known_implementations, "callpipetest",
                        {"class": "callpipe_no_such_package.FS", "err": "Install callpipe_no_such_package to read callpipetest://"})
    _, [problem] = collect_inputs(["callpipetest://b/a.wav"], EXTENSIONS)
    assert problem.reason.startswith("callpipetest://b/a.wav: Install callpipe_no_such_package to read callpipetest://")
    assert "pip install 'callpipe[remote]'" in problem.reason


# --- reading ---------------------------------------------------------------------------------------

def test_a_url_hashes_and_decodes_exactly_like_the_local_file(memory_fs):
    memory_fs.pipe("/b/jfk.flac", JFK.read_bytes())
    for url in ("memory://b/jfk.flac", f"file://{JFK}"):
        assert audio.file_sha256(url) == audio.file_sha256(JFK)
        decoded, local = audio.decode(url), audio.decode(JFK)
        assert decoded.codec == local.codec and np.array_equal(decoded.channels, local.channels)


def test_unreadable_objects_fail_with_one_line_naming_the_url(memory_fs):
    memory_fs.pipe("/b/empty.wav", b"")
    memory_fs.pipe("/b/notes.wav", b"this is not audio\n")
    memory_fs.pipe("/b/folder/x.wav", b"x")
    expected = {
        "memory://b/missing.wav": "memory://b/missing.wav: not found",
        "memory://b/empty.wav": "memory://b/empty.wav: empty file (0 bytes)",
        "memory://b/folder": "memory://b/folder: is a folder, not an audio file",
        "memory://b/notes.wav": "memory://b/notes.wav: not a readable audio file",
    }
    for url, message in expected.items():
        with pytest.raises(audio.AudioError) as caught:
            audio.decode(url)
        assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_worker_checks_a_url_through_its_filesystem(memory_fs):
    from pipeline.ray_executor import readable_problem

    memory_fs.pipe("/b/a.wav", b"RIFF")
    assert readable_problem("memory://b/a.wav") is None
    assert readable_problem("memory://b/gone.wav") == "not found"


# --- S3 -------------------------------------------------------------------------------------------

def test_s3_without_credentials_says_so(s3, monkeypatch, tmp_path):
    import s3fs

    from pipeline.ray_executor import readable_problem

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        problem = readable_problem("s3://calls/day1/clip0.wav")
        assert problem.startswith("no credentials for this store") and "\n" not in problem
    finally:
        s3fs.S3FileSystem.clear_instance_cache()


def test_a_run_over_an_s3_folder_matches_local_paths_and_reruns_skip(s3, clips, local_run, tmp_path, capsys):
    out = tmp_path / "out"
    manifest = tmp_path / "more.csv"
    manifest.write_text("audio_path\ns3://calls/day1/missing.wav\n")
    assert main(["run", "s3://calls/day1/", str(manifest), "--out", str(out), "--no-report"]) == 1
    summary = _last_summary(out)
    assert summary["processed"] == len(EXCERPTS)
    assert [f["reason"] for f in summary["failures"]] == ["s3://calls/day1/missing.wav: not found"]
    assert len(_turns(local_run)) >= len(EXCERPTS) and _turns(out) == _turns(local_run)
    sources = sorted(r[0] for r in _db(out).execute("SELECT source FROM calls"))
    assert sources == [f"s3://calls/day1/clip{i}.wav" for i in range(len(EXCERPTS))]
    assert "FAILED s3://calls/day1/missing.wav: not found" in capsys.readouterr().out

    assert main(["run", "s3://calls/day1/", "--out", str(out), "--no-report"]) == 0
    assert _last_summary(out)["skipped_unchanged"] == len(EXCERPTS)


def test_a_run_over_file_urls_matches_local_paths(clips, local_run, tmp_path):
    out = tmp_path / "out"
    manifest = tmp_path / "calls.jsonl"
    manifest.write_text("".join(json.dumps({"audio_path": f"file://{p}"}) + "\n" for p in sorted(clips.iterdir())))
    missing = f"file://{tmp_path}/missing.wav"
    assert main(["run", str(manifest), missing, "--out", str(out), "--no-report"]) == 1
    summary = _last_summary(out)
    assert summary["processed"] == len(EXCERPTS)
    assert [f["reason"] for f in summary["failures"]] == [f"{missing}: not found"]
    assert _turns(out) == _turns(local_run)
    # A browser cannot open the URL: --copy-audio downloads the audio into the report.
    assert main(["report", str(out), "--copy-audio"]) == 0
    copies = sorted(p.read_bytes() for p in (out / "report" / "audio").iterdir())
    assert copies == sorted(p.read_bytes() for p in clips.iterdir())
    # The same audio by local path is the same call: nothing to redo.
    assert main(["run", str(clips), "--out", str(out), "--no-report"]) == 0
    assert _last_summary(out)["skipped_unchanged"] == len(EXCERPTS)
