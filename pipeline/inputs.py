"""What a batch is asked to process: audio files, folders and manifests, with per-call metadata."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import remote

MANIFEST_SUFFIXES = (".csv", ".jsonl")
# Manifest columns with a meaning of their own; any other column is kept as metadata.
KNOWN_COLUMNS = ("call_id", "audio_path", "agent_id", "customer_id", "start_time", "agent_channel", "customer_channel", "language")
_CONSUMED = ("audio_path", "call_id", "agent_channel", "customer_channel", "language")


@dataclass(frozen=True)
class CallInput:
    path: Path | str  # a str only for an object-store URL (see pipeline.remote)
    call_id: str | None = None
    agent_channel: int | None = None  # None: the config's audio.agent_channel
    customer_channel: int | None = None  # None: the other of two channels
    language: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class InputProblem:
    source: str
    reason: str


def _manifest_rows(path: Path | str) -> Iterable[tuple[int, dict | None, str | None]]:
    """(line number, row or None, problem or None) for each data line of a CSV or JSON Lines manifest."""
    opened = remote.open_text(path) if remote.is_url(path) else open(path, encoding="utf-8", newline="")
    with opened as fh:
        if remote.pure(path).suffix.lower() == ".jsonl":
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield lineno, None, f"not valid JSON ({exc.msg})"
                    continue
                if not isinstance(row, dict):
                    yield lineno, None, "expected a JSON object"
                    continue
                yield lineno, row, None
        else:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "audio_path" not in reader.fieldnames:
                yield 1, None, "header must name an audio_path column"
                return
            for row in reader:
                if None in row:  # more cells than the header names
                    yield reader.line_num, None, "more values than columns"
                    continue
                yield reader.line_num, {k: v for k, v in row.items() if v not in (None, "")}, None


def _parse_row(row: dict, base: Path | str) -> CallInput:
    audio = row.get("audio_path")
    if not audio:
        raise ValueError("audio_path is missing")
    path = str(audio) if remote.is_url(str(audio)) else Path(str(audio))
    if isinstance(path, Path) and not path.is_absolute():
        path = remote.join(base, str(audio)) if remote.is_url(base) else base / path
    channels = {}
    for key in ("agent_channel", "customer_channel"):
        value = row.get(key)
        if value is None:
            channels[key] = None
            continue
        try:
            channels[key] = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a channel number, got {value!r}") from None
        if channels[key] < 0:
            raise ValueError(f"{key} must be >= 0, got {value}")
    language = None
    if row.get("language"):
        from .transcribe.base import TranscriptionError, language_code

        try:
            language = language_code(str(row["language"]))
        except TranscriptionError as exc:
            raise ValueError(str(exc)) from None
    metadata = {k: v for k, v in row.items() if k not in _CONSUMED}
    call_id = row.get("call_id")
    return CallInput(
        path=path,
        call_id=str(call_id) if call_id else None,
        agent_channel=channels["agent_channel"],
        customer_channel=channels["customer_channel"],
        language=language,
        metadata=metadata,
    )


def read_manifest(path: Path | str) -> tuple[list[CallInput], list[InputProblem]]:
    """Calls listed in a manifest; malformed rows are reported with their line number and skipped."""
    inputs: list[CallInput] = []
    problems: list[InputProblem] = []
    base = remote.parent(path) if remote.is_url(path) else path.parent
    try:
        for lineno, row, problem in _manifest_rows(path):
            if problem is None:
                try:
                    inputs.append(_parse_row(row, base))
                    continue
                except ValueError as exc:
                    problem = str(exc)
            problems.append(InputProblem(f"{path}:{lineno}", f"{path}, line {lineno}: {problem}; row skipped"))
    except remote.RemoteError as exc:
        problems.append(InputProblem(str(path), f"{path}: cannot read manifest ({exc.reason})"))
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(InputProblem(str(path), f"{path}: cannot read manifest ({exc.__class__.__name__}: {exc})"))
    return inputs, problems


def collect_inputs(paths: Sequence[Path | str], extensions: Sequence[str]) -> tuple[list[CallInput], list[InputProblem]]:
    """Expand files, folders (recursive, sorted) and manifests, local or at URLs, into calls to process."""
    inputs: list[CallInput] = []
    problems: list[InputProblem] = []
    suffixes = {e.lower() for e in extensions}
    for path in paths:
        if remote.is_url(path):
            _collect_url(path, suffixes, inputs, problems)
            continue
        path = Path(path)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes and not p.name.startswith("."))
            inputs.extend(CallInput(p) for p in found if not p.is_dir())
            # A folder named like audio is reported, not silently skipped.
            problems.extend(InputProblem(str(p), f"{p}: is a directory, not an audio file") for p in found if p.is_dir())
        elif path.suffix.lower() in MANIFEST_SUFFIXES and path.is_file():
            rows, bad = read_manifest(path)
            inputs.extend(rows)
            problems.extend(bad)
        elif path.exists() or path.is_symlink():
            inputs.append(CallInput(path))
        else:
            problems.append(InputProblem(str(path), f"{path}: file not found"))
    return inputs, problems


def _collect_url(url: str, suffixes: set[str], inputs: list[CallInput], problems: list[InputProblem]) -> None:
    """A URL naming a folder (prefix), a manifest or one audio object."""
    if remote.pure(url).suffix.lower() in MANIFEST_SUFFIXES:
        rows, bad = read_manifest(url)
        inputs.extend(rows)
        problems.extend(bad)
        return
    try:
        found = remote.list_audio(url, suffixes)
    except remote.RemoteError as exc:
        problems.append(InputProblem(url, str(exc)))
        return
    inputs.extend(CallInput(u) for u in (found if found is not None else [url]))
