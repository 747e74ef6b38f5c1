"""The batch runner: strings the stages together for each file and keeps going past bad ones."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import audio as audio_mod
from .audio import Audio, AudioError
from .config import Config
from .records import AGENT, CUSTOMER, UNKNOWN, Call
from .scoring import analyze_call
from .sequences import call_events, frequent_ngrams
from .store import Store
from .transcribe import TranscriptionError, load_transcriber
from .turns import build_turns


@dataclass
class RunSummary:
    run_id: int
    out_dir: Path
    processed: int = 0
    failed: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def real_time_factor(self) -> float:
        """Wall time per second of audio (below 1 is faster than real time)."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else 0.0

    def to_dict(self) -> dict:
        return {
            "processed": self.processed,
            "failed": self.failed,
            "audio_seconds": round(self.audio_seconds, 2),
            "wall_seconds": round(self.wall_seconds, 2),
            "real_time_factor": round(self.real_time_factor, 4),
            "failures": [{"source": s, "reason": r} for s, r in self.failures],
        }


def discover(paths: Iterable[Path], extensions: Sequence[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files to process (folders searched recursively, in sorted order) and paths that cannot be used."""
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    suffixes = {e.lower() for e in extensions}
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes and not p.name.startswith("."))
            # A folder named like audio is reported, not silently skipped.
            files.extend(p for p in found if p.is_file())
            problems.extend((str(p), f"{p}: is a directory, not an audio file") for p in found if p.is_dir())
        elif path.exists():
            files.append(path)
        else:
            problems.append((str(path), f"{path}: file not found"))
    return files, problems


def make_call_id(path: Path, sha256: str) -> str:
    """Readable and unique: the file stem, plus a content hash prefix so equal stems never collide."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem).strip("_") or "call"
    return f"{stem[:60]}-{sha256[:8]}"


def is_dual_mono(channels: np.ndarray) -> bool:
    """Two channels carrying the same signal (a mono recording saved as stereo)."""
    if channels.shape[0] != 2:
        return False
    # Lossy coding leaves small differences between the copies, so compare shapes, not samples.
    left, right = channels[:, ::4].astype(np.float64)
    if left.std() < 1e-6 or right.std() < 1e-6:
        return left.std() < 1e-6 and right.std() < 1e-6
    return float(np.corrcoef(left, right)[0, 1]) > 0.99


def channel_roles(audio: Audio, agent_channel: int) -> list[tuple[np.ndarray, int, str]]:
    """(samples, channel index, role) for each channel that gets transcribed."""
    channels = audio.channels
    if channels.shape[0] == 1 or is_dual_mono(channels):
        return [(channels[0], 0, UNKNOWN)]
    if channels.shape[0] == 2:
        other = 1 - agent_channel
        return [(channels[agent_channel], agent_channel, AGENT), (channels[other], other, CUSTOMER)]
    raise AudioError(f"{channels.shape[0]} channels: only mono and 2-channel (agent/customer) calls are supported")


class CallProcessor:
    """Runs one file through every per-call stage. Models load on first use, once per process."""

    def __init__(self, cfg: Config):
        self.cfg = cfg

    @property
    def transcriber(self):
        return load_transcriber(self.cfg.asr)

    def tagger(self, language: str):
        from .tagging import load_tagger

        return load_tagger(self.cfg.tagging, language)

    def model_versions(self, languages: Iterable[str] = ("en",)) -> dict[str, str]:
        versions = {"asr": f"{self.transcriber.name}:{self.transcriber.model_version}"}
        for lang in sorted(set(languages)):
            versions.update(self.tagger(lang).model_versions)
        return versions

    def process(self, path: Path):
        sha = audio_mod.file_sha256(path)
        decoded = audio_mod.decode(path)
        parts = channel_roles(decoded, self.cfg.audio.agent_channel)
        segments = []
        language_votes: dict[str, float] = {}
        for samples, channel, _role in parts:
            transcript = self.transcriber.transcribe(samples, channel=channel)
            segments.extend(transcript.segments)
            speech = sum(s.end - s.start for s in transcript.segments)
            language_votes[transcript.language] = language_votes.get(transcript.language, 0.0) + speech + 1e-6
        language = max(language_votes, key=language_votes.get)
        turns = build_turns(segments, {ch: role for _s, ch, role in parts}, self.cfg.turns.split_pause, self.cfg.turns.max_pause)
        call = Call(
            call_id=make_call_id(path, sha),
            source=str(path.resolve()),
            duration=round(decoded.duration, 3),
            channels=decoded.n_channels,
            language=language,
            turns=turns,
            audio_sha256=sha,
            metadata={"codec": decoded.codec, "source_rate": decoded.source_rate},
        )
        tags = self.tagger(language).tag(call.turns)
        analysis = analyze_call(call, tags, self.cfg.scoring)
        events = call_events(call.turns, tags)
        return call, tags, analysis, events


def _progress(iterable, total: int):
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a nicety, never a reason to fail
        return iterable
    return tqdm(iterable, total=total, unit="call", disable=not sys.stderr.isatty())


def run_batch(paths: Sequence[Path], out_dir: Path, cfg: Config, log=print) -> RunSummary:
    """Process every file under ``paths`` into the store in ``out_dir``; failures are recorded, not raised."""
    from .export import write_call_json

    started = time.perf_counter()
    files, problems = discover(paths, cfg.audio.extensions)
    processor = CallProcessor(cfg)
    with Store(out_dir) as store:
        run_id = store.start_run(cfg.to_dict(), {})
        summary = RunSummary(run_id=run_id, out_dir=out_dir)
        languages = {"en"}
        for source, reason in problems:
            store.record_error(run_id, source, reason)
            summary.failures.append((source, reason))
            log(f"FAILED {reason}", file=sys.stderr)
        for path in _progress(files, len(files)):
            try:
                call, tags, analysis, events = processor.process(path)
            except (AudioError, TranscriptionError, OSError) as exc:
                reason = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
                store.record_error(run_id, str(path), reason)
                summary.failures.append((str(path), reason))
                log(f"FAILED {reason}", file=sys.stderr)
                continue
            store.save_call(run_id, call, tags, analysis, events)
            write_call_json(store, out_dir, call.call_id)
            languages.add(call.language)
            summary.processed += 1
            summary.audio_seconds += call.duration
            log(f"ok {path} -> {call.call_id} ({call.duration:.1f} s, {len(call.turns)} turns, {analysis.issue_state}, score {analysis.efficiency_score})")
        summary.failed = len(summary.failures)
        store.save_patterns(
            frequent_ngrams(store.event_sequences(), cfg.sequences.min_n, cfg.sequences.max_n, cfg.sequences.top_k)
        )
        summary.wall_seconds = time.perf_counter() - started
        versions = processor.model_versions(languages) if summary.processed else {}
        store.finish_run(run_id, summary.to_dict(), versions)
        if cfg.report.enabled:
            from .report import write_report

            index = write_report(store, out_dir)
            log(f"report: {index}")
    log(
        f"{summary.processed} call(s) processed, {summary.failed} failed; "
        f"{summary.audio_seconds:.1f} s of audio in {summary.wall_seconds:.1f} s "
        f"(real-time factor {summary.real_time_factor:.3f}, {1 / summary.real_time_factor if summary.real_time_factor else 0:.1f}x real time); "
        f"results in {out_dir}"
    )
    return summary
