"""Text transcripts into the pipeline: STC3 dialogue files and callpipe's own per-call JSON.

Chats and calls transcribed elsewhere enter after transcription: each becomes a
``Call`` whose turns have no times (``metadata["modality"] = "text"``), then goes
through tagging and scoring exactly like a transcribed call.

Accepted ``.json`` files:

- STC3 (NTCIR-14 helpdesk dialogues): a list of ``{"id", "turns": [{"sender":
  "customer"|"helpdesk", "utterances": [...]}], "annotations"?}``; one file holds many
  dialogues. helpdesk -> agent. Annotations, when present, are kept as the call's
  ``metadata["reference"]`` (annotators' mean A/S/E and majority act per turn).
- callpipe per-call JSON: what ``callpipe run`` writes to ``OUT/calls/ID.json``, or any
  object with ``turns: [{"role", "text", "start"?, "end"?, "words"?}]`` (and optional
  ``call_id``, ``language``, ``duration``, ``metadata``); a list of such objects too.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .config import Config
from .records import ACTS, AGENT, CUSTOMER, ROLES, UNKNOWN, Call, Turn, Word

STC3_ROLES = {"customer": CUSTOMER, "helpdesk": AGENT}
ROLE_ALIASES = {"helpdesk": AGENT, "agent": AGENT, "customer": CUSTOMER, "caller": CUSTOMER, "client": CUSTOMER, "user": CUSTOMER}
# STC3 nugget label -> act (as pipeline.tagging.training maps them).
NUGGET_TO_ACT = {"CNUG0": "problem_stated", "HNUG*": "solution_offered", "CNUG*": "solution_confirmed"}
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# Calls tagged together by an import: large enough that the models run once per many calls,
# small enough that a killed import loses little and memory stays flat.
IMPORT_CHUNK = 256


class TranscriptError(ValueError):
    """A .json file that is not a transcript this module reads, or a malformed one."""


# --- recognising and reading ---------------------------------------------------------------------

def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TranscriptError(f"{path}: not readable JSON ({exc})") from None


def transcript_format(data) -> str | None:
    """'stc3', 'callpipe' or None, from the first item's shape."""
    first = data[0] if isinstance(data, list) and data else data
    if not isinstance(first, dict) or not isinstance(first.get("turns"), list):
        return None
    turns = first["turns"]
    sample = turns[0] if turns else {}
    if not isinstance(sample, dict):
        return None
    if "sender" in sample and "utterances" in sample:
        return "stc3"
    if "role" in sample and "text" in sample or not turns:
        return "callpipe"
    return None


def is_transcript(path: str | Path) -> bool:
    """True for a .json file holding STC3 dialogues or callpipe per-call JSON."""
    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        return transcript_format(_read_json(path)) is not None
    except TranscriptError:
        return False


def detect_language(texts: Sequence[str]) -> str:
    """zh when at least a fifth of the letters are Chinese characters, else en."""
    joined = "".join(texts)
    letters = sum(1 for c in joined if c.isalpha())
    return "zh" if letters and len(_CJK.findall(joined)) / letters >= 0.2 else "en"


def _call_id(prefix: str, raw_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(raw_id)).strip("_") or "call"
    return f"{prefix}{safe}"[:80]


def _majority_act(labels: Sequence[str]) -> str:
    """The act most annotators chose ("regular" and "not a nugget" both count as other); ties: ACTS order."""
    counts = Counter(NUGGET_TO_ACT.get(label, "other") for label in labels)
    return max(ACTS, key=lambda act: (counts[act], -ACTS.index(act)))


def stc3_reference(item: dict) -> dict | None:
    """Annotators' mean quality (A, S, E in -2..2) and the majority act of each turn."""
    annotations = item.get("annotations") or []
    if not annotations:
        return None
    if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
        raise TranscriptError("'annotations' must be a list of objects")
    quality = {
        key: round(sum(a["quality"][key] for a in annotations) / len(annotations), 4)
        for key in ("A", "S", "E")
        if all(key in (a.get("quality") or {}) for a in annotations)
    }
    n = len(item["turns"])
    acts = [_majority_act([a["nugget"][i] for a in annotations if i < len(a.get("nugget", []))]) for i in range(n)]
    agreement = [
        round(sum(1 for a in annotations if i < len(a.get("nugget", [])) and NUGGET_TO_ACT.get(a["nugget"][i], "other") == acts[i])
              / len(annotations), 4)
        for i in range(n)
    ]
    return {"quality": quality, "acts": acts, "act_agreement": agreement, "annotators": len(annotations)}


def stc3_call(item: dict, source: str, language: str | None = None, position: int = 0) -> Call:
    """One STC3 dialogue as a text call; the id gets the language so en and zh copies never collide.

    A dialogue without an id is named after its file and position, so two never share one.
    """
    turns = []
    for i, t in enumerate(item["turns"]):
        sender = t.get("sender") if isinstance(t, dict) else None
        if sender not in STC3_ROLES:
            raise TranscriptError(f"turn {i}: unknown sender {sender!r} (expected 'customer' or 'helpdesk')")
        text = " ".join(u.strip() for u in t.get("utterances") or [] if isinstance(u, str) and u.strip())
        turns.append(Turn(index=i, role=STC3_ROLES[sender], start=0.0, end=0.0, text=text))
    language = language or detect_language([t.text for t in turns])
    metadata: dict = {"modality": "text", "format": "stc3", "dialogue_id": str(item.get("id"))}
    reference = stc3_reference(item)
    if reference:
        metadata["reference"] = reference
    return Call(
        call_id=_call_id(f"stc3-{language}-", item.get("id") or f"{Path(source).stem}-{position}"),
        source=source, duration=0.0, channels=0, language=language, turns=tuple(turns), metadata=metadata,
    )


def _number(value, default: float = 0.0) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _whole(value, field: str, default: int, where: str = "") -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise TranscriptError(f"{where}{field!r} must be a whole number, got {value!r}")
    return value


def callpipe_call(item: dict, source: str, position: int = 0) -> Call:
    """A callpipe per-call JSON object (or a minimal {turns: [{role, text}]}) as a Call."""
    turns = []
    for i, t in enumerate(item.get("turns") or []):
        if not isinstance(t, dict) or not isinstance(t.get("text", ""), str):
            raise TranscriptError(f"turn {i}: expected an object with role and text")
        role = ROLE_ALIASES.get(str(t.get("role", "")).lower(), str(t.get("role") or UNKNOWN).lower())
        words = tuple(
            Word(_number(w.get("start")), _number(w.get("end")), str(w.get("text", "")), _number(w.get("probability"), 1.0))
            for w in t.get("words") or [] if isinstance(w, dict)
        )
        channel = t.get("channel")
        turns.append(Turn(
            index=_whole(t.get("turn_index", t.get("index")), "turn_index", i, f"turn {i}: "), role=role if role in ROLES else UNKNOWN,
            start=_number(t.get("start")), end=_number(t.get("end")), text=t.get("text", ""), words=words,
            channel=channel if isinstance(channel, int) else None,
        ))
    turns.sort(key=lambda t: t.index)
    timed = any(t.end > t.start for t in turns)
    duration = _number(item.get("duration"), max((t.end for t in turns), default=0.0))
    if not isinstance(item.get("metadata") or {}, dict):
        raise TranscriptError("'metadata' must be an object")
    metadata = dict(item.get("metadata") or {})
    metadata.setdefault("format", "callpipe")
    if not timed:
        metadata["modality"] = "text"
        duration = 0.0
    language = item.get("language") or detect_language([t.text for t in turns])
    raw_id = item.get("call_id") or f"{Path(source).stem}-{position}"
    return Call(
        call_id=_call_id("", raw_id), source=str(item.get("source") or source), duration=round(duration, 3),
        channels=_whole(item.get("channels"), "channels", 0), language=str(language), turns=tuple(turns),
        audio_sha256=str(item.get("audio_sha256") or ""), metadata=metadata,
    )


def items_from_data(data, source: str) -> list[Call | TranscriptError]:
    """Each item of a transcript file as a Call, or the one-line reason it could not be read."""
    kind = transcript_format(data)
    if kind is None:
        raise TranscriptError(f"{source}: neither STC3 dialogues nor callpipe per-call JSON (expected objects with 'turns')")
    items = data if isinstance(data, list) else [data]
    language = "zh" if kind == "stc3" and re.search(r"_(cn|zh)\b", Path(source).stem) else None
    out: list[Call | TranscriptError] = []
    for n, item in enumerate(items):
        try:
            if not isinstance(item, dict) or not isinstance(item.get("turns"), list):
                raise TranscriptError("not an object with a 'turns' list")
            out.append(stc3_call(item, source, language, n) if kind == "stc3" else callpipe_call(item, source, n))
        except (TranscriptError, KeyError, TypeError, ValueError, AttributeError) as exc:
            reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            out.append(TranscriptError(f"{source}: item {n}{_named_item(item)}: {reason}"))
    return out


def _named_item(item) -> str:
    name = item.get("id", item.get("call_id")) if isinstance(item, dict) else None
    return f" ({name})" if name is not None else ""


def calls_from_data(data, source: str) -> list[Call]:
    """Every call in ``data``; the first unreadable item raises its TranscriptError."""
    items = items_from_data(data, source)
    for item in items:
        if isinstance(item, TranscriptError):
            raise item
    return items


def load_transcripts(path: str | Path) -> list[Call]:
    """Every call in one transcript file (an STC3 file holds many dialogues)."""
    path = Path(path)
    return calls_from_data(_read_json(path), str(path.resolve()))


# --- processing -------------------------------------------------------------------------------------

def process_transcript(call: Call, cfg: Config):
    """Tagging, scoring and events for a call that needs no ASR: (call, tags, analysis, events)."""
    return process_transcripts([call], cfg)[0]


def process_transcripts(calls: Sequence[Call], cfg: Config) -> list:
    """``process_transcript`` for many calls, tagged together (much faster than one by one).

    Returns one result per call, in order; a call that fails to tag or score gets its
    exception instead, so one bad call does not cost the others.
    """
    from .tagging import load_tagger

    tags: dict[int, list] = {}
    by_language: dict[str | None, list[int]] = {}
    for i, call in enumerate(calls):
        by_language.setdefault(call.language, []).append(i)
    for language, members in by_language.items():
        tagger = load_tagger(cfg.tagging, language)
        try:
            tags.update(zip(members, tagger.tag_calls([calls[i].turns for i in members])))
        except Exception:  # find the bad call(s): tag one by one
            for i in members:
                try:
                    tags[i] = tagger.tag(calls[i].turns)
                except Exception as exc:
                    tags[i] = exc
    return [tags[i] if isinstance(tags[i], Exception) else _finish_call(call, tags[i], cfg) for i, call in enumerate(calls)]


def processed_chunks(chunks: Iterable[Sequence[Call]], cfg: Config, workers: int = 1) -> Iterator[tuple[Sequence[Call], list]]:
    """``(chunk, process_transcripts(chunk, cfg))`` for each chunk, in order.

    With ``workers > 1`` the chunks are processed in that many spawned processes, each
    loading the taggers once; a few chunks per worker are in flight at a time, so memory
    stays flat however many calls come. A worker that dies fails the calls of its chunk.
    """
    if workers <= 1:
        for chunk in chunks:
            yield chunk, process_transcripts(chunk, cfg)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")  # as the batch runner's workers: no fork after library start-up
    # Workers ignore SIGINT: a Ctrl-C reaches the whole process group, and the main process
    # decides when to stop. Closing this generator early drops the chunks not yet started.
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=signal.signal,
                               initargs=(signal.SIGINT, signal.SIG_IGN))
    try:
        in_flight: deque = deque()  # (chunk, future), oldest first
        for chunk in chunks:
            in_flight.append((chunk, pool.submit(process_transcripts, chunk, cfg)))
            if len(in_flight) >= 2 * workers:
                yield _chunk_result(*in_flight.popleft(), BrokenProcessPool)
        while in_flight:
            yield _chunk_result(*in_flight.popleft(), BrokenProcessPool)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _chunk_result(chunk, future, broken):
    try:
        return chunk, future.result()
    except broken:
        return chunk, [RuntimeError("worker process died while processing this call")] * len(chunk)


def _finish_call(call: Call, tags, cfg: Config):
    from .privacy import redact_call
    from .scoring import analyze_call
    from .sequences import call_events

    try:
        call, tags = redact_call(call, tags, cfg.privacy)
        analysis = analyze_call(call, tags, cfg.scoring)
        events = call_events(call.turns, tags, cfg=cfg)
    except Exception as exc:
        return exc
    return call, tags, analysis, events


def transcript_fingerprint(call: Call, cfg: Config, models: str) -> str:
    """What a stored transcript was made from; equal fingerprints mean redoing it changes nothing."""
    relevant = cfg.to_dict()
    for key in ("report", "sequences", "drivers", "suggest", "scorecards", "asr", "audio", "turns"):
        relevant.pop(key, None)
    payload = json.dumps(
        {"turns": [(t.index, t.role, t.start, t.end, t.text) for t in call.turns], "metadata": call.metadata,
         "language": call.language, "config": relevant, "models": models},
        sort_keys=True, default=str, ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def import_transcripts(paths: Sequence[str | Path], out_dir: str | Path, cfg: Config, *, force: bool = False,
                       log_json: bool = False, workers: int = 1):
    """Store every call of the given transcript files in ``out_dir`` as `callpipe run` does.

    One transaction per call (Store.save_call), the call's JSON, then the cross-call
    analytics and the report. Unchanged calls are skipped unless ``force``. A bad file
    or call is recorded as failed and the others go on. ``workers`` processes tag and
    score in parallel; this process alone writes the store. Returns the batch's RunSummary.
    """
    from .batch import Log, RunLock, RunSummary, _finish, _StopFlag, models_fingerprint, record_failure
    from .export import write_call_json
    from .store import Store

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    log = Log(as_json=log_json)
    started = time.perf_counter()
    out_dir = Path(out_dir)
    with RunLock(out_dir), Store(out_dir) as store, _StopFlag() as stop:
        models = models_fingerprint(cfg)
        run_id = store.start_run(cfg.to_dict(), {"models_fingerprint": models})
        summary = RunSummary(run_id=run_id, out_dir=out_dir)
        sources: deque[tuple[Path, str]] = deque()  # (file, fingerprint) of each call sent, in order
        seen: dict[str, tuple[Path, str]] = {}  # call id -> (file, fingerprint), this run

        def todo() -> Iterator[list[Call]]:
            """Chunks of the calls that need processing, file after file."""
            chunk: list[Call] = []
            passed_over: list[Path] = []
            for path, in_folder in _expand(paths):
                try:
                    data = _read_json(path)
                    if in_folder and transcript_format(data) is None:
                        passed_over.append(path)  # other JSON that lives beside transcripts
                        continue
                    items = items_from_data(data, str(path.resolve()))
                except TranscriptError as exc:
                    record_failure(store, summary, log, str(path), f"{path}: {exc}" if str(path) not in str(exc) else str(exc))
                    continue
                for call in items:
                    if isinstance(call, TranscriptError):
                        record_failure(store, summary, log, str(path), str(call))
                        continue
                    fingerprint = transcript_fingerprint(call, cfg, models)
                    if call.call_id in seen:
                        first, first_fingerprint = seen[call.call_id]
                        if first_fingerprint == fingerprint:
                            summary.duplicates += 1
                            log("duplicate", f"skip {call.call_id} in {path}: same transcript as in {first}, which is processed once",
                                source=str(path), call_id=call.call_id, duplicate_of=str(first))
                        else:
                            record_failure(store, summary, log, str(path), f"{path}: {call.call_id}: another transcript with this "
                                           f"id came first (from {first}); give each call its own id")
                        continue
                    seen[call.call_id] = (path, fingerprint)
                    if not force and store.call_fingerprint(call.call_id) == fingerprint:
                        summary.skipped += 1
                        continue
                    sources.append((path, fingerprint))
                    chunk.append(call)
                    if len(chunk) == IMPORT_CHUNK:
                        yield chunk
                        chunk = []
            if passed_over:
                log("skipped", f"passed over {len(passed_over)} .json file(s) that are not transcripts "
                    f"(e.g. {passed_over[0].name})", count=len(passed_over))
            if chunk:
                yield chunk

        for chunk, results in processed_chunks(todo(), cfg, workers):
            for call, result in zip(chunk, results):
                path, fingerprint = sources.popleft()
                if isinstance(result, Exception):  # one bad call must not stop the import
                    record_failure(store, summary, log, str(path), f"{path}: {call.call_id}: {result} ({result.__class__.__name__})")
                    continue
                call, tags, analysis, events = result
                store.save_call(run_id, call, tags, analysis, events, fingerprint=fingerprint)
                write_call_json(store, out_dir, call.call_id)
                summary.processed += 1
                summary.flagged.extend((call.call_id, flag) for flag in analysis.flags)
            if stop():  # what is stored stays; the calls in flight and the files not yet read wait for the next run
                summary.interrupted = True
                summary.remaining = len(sources)
                break
        if summary.skipped:
            log("skipped", f"{summary.skipped} call(s) unchanged since an earlier run (use --force to redo them)", count=summary.skipped)
        _finish(store, out_dir, cfg, summary, log, started)
    return summary


def _expand(paths: Sequence[str | Path]) -> list[tuple[Path, bool]]:
    """(file, found in a folder): files as given, folders searched for .json files (sorted).

    A folder's JSON that is not a transcript is passed over; one that is not readable JSON
    fails with its reason, as it may be a broken transcript.
    """
    out: list[tuple[Path, bool]] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend((f, True) for f in sorted(p.rglob("*.json")) if f.is_file())
        else:
            out.append((p, False))
    return out
