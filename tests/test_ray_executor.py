"""The Ray executor on a real local Ray instance (2 CPUs): the same store as the local executor,
workers that die mid-batch, paths a worker cannot read, and the usage errors."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.config import BatchConfig, Config, ReportConfig

from .audio_util import write_excerpts
from .conftest import JFK

ray = pytest.importorskip("ray")

from pipeline.executors import ExecutorError  # noqa: E402
from pipeline.ray_executor import ACTOR_PREFIX, plan_actors  # noqa: E402

# Short inputs keep the suite quick: the mono jfk clip and distinct stretches of the stereo call.
EXCERPTS = [(0, 12), (44, 58), (140, 152), (200, 214)]

# Every per-call table, all columns but when a row was written; and the cross-call tables.
COMPARED = {
    "calls": "call_id, source, audio_sha256, duration, channels, language, metadata_json, fingerprint",
    "turns": "*",
    "tags": "*",
    "analyses": "*",
    "events": "*",
    "patterns": "rank, events_json, length, support, occurrences, resolution_rate",
    "repeat_contacts": "*",
    "drivers": "*",
    "scorecards": "*",
}


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance with 2 CPUs for the module; the executor joins it and leaves it running."""
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray_clips")
    (folder / "jfk.flac").write_bytes(JFK.read_bytes())
    return write_excerpts(folder, EXCERPTS)


def _db(out: Path) -> sqlite3.Connection:
    return sqlite3.connect(out / "callpipe.sqlite")


def _table(out: Path, table: str) -> list[tuple]:
    return sorted(_db(out).execute(f"SELECT {COMPARED[table]} FROM {table}").fetchall(), key=repr)


def _stored_and_failed(out: Path) -> tuple[list[str], list[tuple[str, str]]]:
    db = _db(out)
    sources = [Path(r[0]).name for r in db.execute("SELECT source FROM calls")]
    failed = [(Path(s).name, r) for s, r in db.execute("SELECT source, reason FROM errors")]
    return sources, failed


def test_ray_gives_the_same_store_as_the_local_executor(ray_instance, clips, tmp_path, capsys, monkeypatch):
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    # Two local worker processes with the threads each of the two Ray actors gets (1 CPU each:
    # 1 CTranslate2 thread, OMP_NUM_THREADS=1). The OpenMP thread count changes the order in which
    # the numeric kernels sum, and with it a word's probability and, rarely, a word.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert main(["run", str(clips), "--out", str(local), "--no-report", "--workers", "2"]) == 0
    assert main(["run", str(clips), "--out", str(on_ray), "--no-report", "--executor", "ray", "--workers", "2"]) == 0
    assert "2 worker(s), 1 CPU(s)" in capsys.readouterr().out
    assert len(_table(local, "calls")) == 1 + len(EXCERPTS)
    assert len(_table(local, "turns")) >= len(EXCERPTS)
    # Exact equality, floats included: the same model, with the same threads, on the same audio.
    for table in COMPARED:
        assert _table(on_ray, table) == _table(local, table), table
    # A Ray run over the local executor's store finds every call unchanged (same fingerprints).
    assert main(["run", str(clips), "--out", str(local), "--no-report", "--executor", "ray"]) == 0
    assert f"{1 + len(EXCERPTS)} call(s) unchanged" in capsys.readouterr().out


def _kill_workers_after_first_stored_call(monkeypatch):
    """Kill every worker actor right after the driver stores the first call: the others' calls are in flight."""
    from pipeline.store import Store

    save = Store.save_call
    killed = []

    def save_then_kill(self, *args, **kwargs):
        result = save(self, *args, **kwargs)
        if not killed:
            for name in ray.util.list_named_actors():
                if name.startswith(ACTOR_PREFIX):
                    ray.kill(ray.get_actor(name), no_restart=True)
                    killed.append(name)
        return result

    monkeypatch.setattr(Store, "save_call", save_then_kill)
    return killed


def test_killed_workers_calls_are_retried_and_each_call_is_stored_once(ray_instance, clips, tmp_path, monkeypatch, capsys):
    from pipeline.batch import run_batch

    killed = _kill_workers_after_first_stored_call(monkeypatch)
    out = tmp_path / "out"
    cfg = Config(report=ReportConfig(enabled=False))
    summary = run_batch([clips], out, cfg, workers=2, executor="ray")
    assert len(killed) == 2
    assert "died" in capsys.readouterr().out  # calls were in flight on the killed workers, and were retried
    sources, failed = _stored_and_failed(out)
    assert failed == [] and summary.processed == 1 + len(EXCERPTS)
    assert sorted(sources) == sorted(p.name for p in clips.iterdir())  # each exactly once


def test_without_retries_a_killed_workers_calls_are_recorded_as_failed(ray_instance, clips, tmp_path, monkeypatch):
    from pipeline.batch import run_batch

    killed = _kill_workers_after_first_stored_call(monkeypatch)
    out = tmp_path / "out"
    cfg = Config(report=ReportConfig(enabled=False), batch=BatchConfig(max_retries=0))
    summary = run_batch([clips], out, cfg, workers=2, executor="ray")
    assert killed
    sources, failed = _stored_and_failed(out)
    # None lost, none twice: every input is either stored once or recorded as failed once.
    assert sorted(sources + [name for name, _ in failed]) == sorted(p.name for p in clips.iterdir())
    assert failed and summary.failed == len(failed) and summary.exit_code == 1
    for name, reason in failed:
        assert reason.startswith(str(clips / name)) and "Ray worker died" in reason and "after 1 attempt" in reason
        assert "\n" not in reason


def test_a_path_the_worker_cannot_read_fails_that_call_naming_the_file(ray_instance, clips, tmp_path, monkeypatch):
    import pipeline.batch as batch

    gone = tmp_path / "gone.wav"
    gone.write_bytes((clips / "clip0.wav").read_bytes())
    plan = batch.plan

    def plan_then_remove(*args, **kwargs):  # readable where the driver planned, not where the worker runs
        todo = plan(*args, **kwargs)
        gone.unlink()
        return todo

    monkeypatch.setattr(batch, "plan", plan_then_remove)
    out = tmp_path / "out"
    code = main(["run", str(gone), str(clips / "clip1.wav"), "--out", str(out), "--no-report", "--executor", "ray", "--workers", "1"])
    assert code == 1
    sources, failed = _stored_and_failed(out)
    assert sources == ["clip1.wav"]
    [(name, reason)] = failed
    assert name == "gone.wav"
    assert reason.startswith(f"{gone}: not readable from the Ray worker on ") and reason.endswith("(no such file)")


def test_urls_are_read_and_checked_on_the_worker(ray_instance, clips, tmp_path, monkeypatch):
    pytest.importorskip("fsspec")
    import pipeline.batch as batch

    gone = tmp_path / "gone.wav"
    gone.write_bytes((clips / "clip0.wav").read_bytes())
    plan = batch.plan

    def plan_then_remove(*args, **kwargs):
        todo = plan(*args, **kwargs)
        gone.unlink()
        return todo

    monkeypatch.setattr(batch, "plan", plan_then_remove)
    out = tmp_path / "out"
    kept = f"file://{clips / 'clip1.wav'}"
    code = main(["run", f"file://{gone}", kept, "--out", str(out), "--no-report", "--executor", "ray", "--workers", "1"])
    assert code == 1
    db = _db(out)
    assert [r[0] for r in db.execute("SELECT source FROM calls")] == [kept]
    [(source, reason)] = db.execute("SELECT source, reason FROM errors").fetchall()
    assert source == f"file://{gone}"
    assert reason.startswith(f"file://{gone}: not readable from the Ray worker on ") and reason.endswith("(not found)")


def test_gpus_the_cluster_lacks_are_a_usage_error_before_any_work(ray_instance, clips, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(clips), "--out", str(out), "--executor", "ray", "--gpus-per-worker", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--gpus-per-worker 1" in err and "no node with that many GPUs" in err and "\n" not in err
    assert not (out / "callpipe.sqlite").exists()


def test_without_ray_installed_the_ray_executor_fails_before_any_work(clips, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    out = tmp_path / "out"
    assert main(["run", str(clips), "--out", str(out), "--executor", "ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == 'callpipe: error: the Ray executor needs Ray, which is not installed: pip install "callpipe[ray]"'
    assert not out.exists()


def test_ray_flags_need_the_ray_executor(clips, tmp_path, capsys):
    assert main(["run", str(clips), "--out", str(tmp_path / "o"), "--ray-address", "auto"]) == 2
    assert "need --executor ray" in capsys.readouterr().err


def test_actor_sizing_fits_the_cluster():
    # CPU actors: one per node by default, each with the cores every node can give.
    assert plan_actors([2.0], [0.0], None, 0) == (1, 2, 0.0)
    assert plan_actors([2.0], [0.0], 2, 0) == (2, 1, 0.0)
    assert plan_actors([8.0, 16.0], [0.0, 0.0], None, 0) == (2, 8, 0.0)
    assert plan_actors([8.0, 16.0], [0.0, 0.0], 3, 0) == (3, 8, 0.0)
    assert plan_actors([8.0, 16.0], [0.0, 0.0], 4, 0) == (4, 5, 0.0)
    # GPU actors: one per GPU by default.
    assert plan_actors([16.0, 16.0], [4.0, 4.0], None, 1) == (8, 1, 1)
    assert plan_actors([16.0], [4.0], 2, 2) == (2, 1, 2)
    with pytest.raises(ExecutorError, match="do not fit"):
        plan_actors([16.0], [4.0], 3, 2)
    with pytest.raises(ExecutorError, match="only 2 CPU"):
        plan_actors([2.0], [0.0], 3, 0)


def test_an_address_nobody_answers_at_fails_at_once():
    from pipeline.ray_executor import check_reachable

    # Ray itself would keep retrying for minutes: a nightly job must not hang on a dead head node.
    with pytest.raises(ExecutorError, match=r"no Ray cluster answers at 127\.0\.0\.1:1 \(Connection refused\)"):
        check_reachable("127.0.0.1:1", timeout=2)
    check_reachable("auto")  # found by Ray itself, from its own files
