"""Files generated from the store for people and other tools.

- per-call JSON (everything stored about a call),
- turns and per-call analyses as CSV and Parquet (one row per turn / per call),
- SRT and WebVTT subtitles per call (one cue per turn).

Every writer reads calls through ``shareable_record``: when tagging redacted a turn, only
the redacted text leaves the store, so exports and review pages never carry PII that
the configuration said not to keep.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from .store import Store

FORMATS = ("json", "csv", "parquet", "srt", "vtt")

# Flags a reviewer filters on; analysis flags plus one from tagging.
PII_FLAG = "pii_found"

# One row per turn; (column, Parquet type) so the CSV and Parquet files agree.
TURN_COLUMNS = (
    ("call_id", "string"), ("turn_index", "int64"), ("role", "string"), ("start", "float64"), ("end", "float64"),
    ("text", "string"), ("act", "string"), ("act_confidence", "float64"), ("intent", "string"),
    ("intent_confidence", "float64"), ("sentiment", "float64"), ("pii_found", "bool_"), ("entity_types", "string"),
)
# One row per call; score components follow as score_<component>.
ANALYSIS_COLUMNS = (
    ("call_id", "string"), ("run_id", "int64"), ("source", "string"), ("date", "string"), ("agent_id", "string"),
    ("customer_id", "string"), ("duration", "float64"), ("channels", "int64"), ("language", "string"),
    ("turn_count", "int64"), ("issue_state", "string"), ("intent", "string"), ("efficiency_score", "float64"),
    ("handle_time", "float64"), ("non_talk_time", "float64"), ("agent_talk_ratio", "float64"),
    ("sentiment_change", "float64"), ("flags", "string"),
)


# --- what may be shown -------------------------------------------------------------------------

def safe_name(call_id: str) -> str:
    """A file name for a call: the id itself when it is a plain name, else a slug plus a hash.

    Manifests may give any call_id; one holding '/' or '..' must not pick where a file lands.
    """
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}", call_id):
        return call_id
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", call_id).strip("._-")[:60] or "call"
    return f"{slug}-{hashlib.sha256(call_id.encode()).hexdigest()[:8]}"


def turn_text(turn: dict) -> str:
    """The text of a turn that people may read: the redacted text when tagging made one."""
    redacted = (turn.get("tags") or {}).get("redacted_text")
    return redacted if redacted is not None else turn.get("text", "")


def shareable_record(record: dict) -> dict:
    """A stored call record with only what may be shown of redacted turns (a new dict; the
    argument is not changed).

    A redacted turn keeps its redacted text; its word timings (which spell the original
    words) and the text of its entities are dropped.
    """
    turns = record.get("turns") or []
    if not any((t.get("tags") or {}).get("redacted_text") is not None for t in turns):
        return record
    return {**record, "turns": [_shareable_turn(t) for t in turns]}


def _shareable_turn(turn: dict) -> dict:
    tags = turn.get("tags") or {}
    if tags.get("redacted_text") is None:
        return turn
    entities = [{k: v for k, v in e.items() if k != "text"} for e in tags.get("entities") or []]
    return {**turn, "text": tags["redacted_text"], "words": [], "tags": {**tags, "entities": entities}}


def call_date(record: dict) -> str:
    """When the call took place (manifest start_time), else when it was processed: 'YYYY-MM-DD HH:MM'."""
    start = (record.get("metadata") or {}).get("start_time")
    if start not in (None, ""):
        try:
            return datetime.fromisoformat(str(start)).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return str(start)
    processed = record.get("processed_at")
    return datetime.fromtimestamp(processed, tz=timezone.utc).strftime("%Y-%m-%d %H:%M") if processed else ""


def sentiment_change(record: dict) -> float | None:
    """How the customer's mood moved: mean sentiment of their last third of turns minus the first third.

    Scoring stores it with the analysis; calls stored before it did get it worked out
    here, the same way. None when fewer than two customer turns carry a sentiment.
    """
    metrics = (record.get("analysis") or {}).get("metrics") or {}
    if "customer_sentiment_change" in metrics:
        return metrics["customer_sentiment_change"]
    values = [t["tags"]["sentiment"] for t in record.get("turns", [])
              if t.get("role") == "customer" and isinstance((t.get("tags") or {}).get("sentiment"), (int, float))]
    if len(values) < 2:
        return None
    k = max(1, len(values) // 3)
    return round(sum(values[-k:]) / k - sum(values[:k]) / k, 3)


def call_flags(record: dict) -> list[str]:
    analysis = record.get("analysis") or {}
    flags = list(analysis.get("flags") or [])
    if any((t.get("tags") or {}).get("pii_found") for t in record.get("turns", [])):
        flags.append(PII_FLAG)
    return flags


def agent_talk_ratio(analysis: dict) -> float | None:
    talk = analysis.get("talk_time") or {}
    total = talk.get("agent", 0.0) + talk.get("customer", 0.0)
    return round(talk["agent"] / total, 3) if "agent" in talk and total > 0 else None


def call_row(record: dict) -> dict:
    """The per-call summary that the calls index and analyses.csv show."""
    analysis = record.get("analysis") or {}
    metadata = record.get("metadata") or {}
    row = {
        "call_id": record["call_id"],
        "run_id": record.get("run_id"),
        "source": record.get("source", ""),
        "date": call_date(record),
        "agent_id": str(metadata["agent_id"]) if metadata.get("agent_id") not in (None, "") else None,
        "customer_id": str(metadata["customer_id"]) if metadata.get("customer_id") not in (None, "") else None,
        "duration": record.get("duration"),
        "channels": record.get("channels"),
        "language": record.get("language"),
        "turn_count": len(record.get("turns", [])),
        "issue_state": analysis.get("issue_state"),
        "intent": analysis.get("intent"),
        "efficiency_score": analysis.get("efficiency_score"),
        "handle_time": analysis.get("handle_time"),
        "non_talk_time": analysis.get("non_talk_time"),
        "agent_talk_ratio": agent_talk_ratio(analysis),
        "sentiment_change": sentiment_change(record),
        "flags": ";".join(call_flags(record)),
    }
    for name, value in sorted((analysis.get("score_breakdown") or {}).items()):
        row[f"score_{name}"] = value
    return row


def turn_rows(record: dict) -> Iterator[dict]:
    for turn in record.get("turns", []):
        tags = turn.get("tags") or {}
        yield {
            "call_id": record["call_id"],
            "turn_index": turn["turn_index"],
            "role": turn["role"],
            "start": turn["start"],
            "end": turn["end"],
            "text": turn_text(turn),
            "act": tags.get("act"),
            "act_confidence": tags.get("act_confidence"),
            "intent": tags.get("intent"),
            "intent_confidence": tags.get("intent_confidence"),
            "sentiment": tags.get("sentiment"),
            "pii_found": tags.get("pii_found"),
            "entity_types": ";".join(str(e.get("type", "")) for e in tags.get("entities") or []),
        }


def shareable_records(store: Store) -> Iterator[dict]:
    """Every stored call, one at a time (a large store never sits in memory whole)."""
    for call_id in store.call_ids():
        yield shareable_record(store.call_record(call_id))


# --- writers -----------------------------------------------------------------------------------

def _replace(path: Path, write) -> Path:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)
    return path


def write_call_json(store: Store, out_dir: Path, call_id: str) -> Path:
    """DIR/calls/<call_id>.json: everything stored about one call."""
    return _write_record_json(Path(out_dir), shareable_record(store.call_record(call_id)))


def _write_record_json(out_dir: Path, record: dict) -> Path:
    text = json.dumps(record, ensure_ascii=False, indent=2)
    return _replace(out_dir / "calls" / f"{safe_name(record['call_id'])}.json", lambda p: p.write_text(text, encoding="utf-8"))


def _timestamp(seconds: float, decimal_mark: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_mark}{millis:03d}"


def subtitles(record: dict, fmt: str) -> str:
    """SRT or WebVTT text with one cue per turn, the speaker's role first."""
    if fmt not in ("srt", "vtt"):
        raise ValueError(f"unknown subtitle format {fmt!r}")
    cues = ["WEBVTT\n"] if fmt == "vtt" else []
    for n, turn in enumerate(record.get("turns", []), start=1):
        # A cue is one paragraph: blank lines inside would end it early.
        text = " ".join(turn_text(turn).split())
        role = turn["role"].capitalize()
        if fmt == "vtt":
            # WebVTT cue text is markup: escape it, and name the speaker with a voice span.
            text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            body = f"<v {role}>{text}"
            timing = f"{_timestamp(turn['start'], '.')} --> {_timestamp(turn['end'], '.')}"
        else:
            body = f"{role}: {text.replace('-->', '->')}"
            timing = f"{_timestamp(turn['start'], ',')} --> {_timestamp(turn['end'], ',')}"
        cues.append(f"{n}\n{timing}\n{body}\n")
    return "\n".join(cues)


def _write_csv(path: Path, columns: list[str], rows: Iterable[dict]) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    return _replace(path, write)


def _write_parquet(path: Path, columns: list[tuple[str, str]], rows: Iterable[dict], batch_rows: int = 50_000) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in columns])

    def write(tmp: Path) -> None:
        with pq.ParquetWriter(tmp, schema) as writer:
            batch: list[dict] = []
            for row in rows:
                batch.append(row)
                if len(batch) >= batch_rows:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    batch = []
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))

    return _replace(path, write)


def _analysis_columns(rows: list[dict]) -> list[tuple[str, str]]:
    components = sorted({k for row in rows for k in row if k.startswith("score_")})
    return list(ANALYSIS_COLUMNS) + [(k, "float64") for k in components]


def export(store: Store, dest: str | Path, formats: Iterable[str] = FORMATS) -> list[Path]:
    """Write the chosen formats under ``dest``; returns the files written.

    dest/calls/<id>.json, dest/turns.{csv,parquet}, dest/analyses.{csv,parquet},
    dest/srt/<id>.srt, dest/vtt/<id>.vtt.
    """
    dest = Path(dest)
    formats = set(formats)
    unknown = formats - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown export format(s): {', '.join(sorted(unknown))}")
    written: list[Path] = []
    per_call = formats & {"json", "srt", "vtt"}
    if per_call:
        for record in shareable_records(store):
            name = safe_name(record["call_id"])
            if "json" in per_call:
                written.append(_write_record_json(dest, record))
            for fmt in sorted(per_call & {"srt", "vtt"}):
                text = subtitles(record, fmt)
                written.append(_replace(dest / fmt / f"{name}.{fmt}", lambda p, t=text: p.write_text(t, encoding="utf-8")))
    tables = formats & {"csv", "parquet"}
    if tables:
        # Per-call rows are small and their score components are only known after reading them all.
        analyses = [call_row(r) for r in shareable_records(store)]
        analysis_columns = _analysis_columns(analyses)
        turn_columns = list(TURN_COLUMNS)

        def turns() -> Iterator[dict]:
            for record in shareable_records(store):
                yield from turn_rows(record)

        if "csv" in tables:
            written.append(_write_csv(dest / "turns.csv", [c for c, _ in turn_columns], turns()))
            written.append(_write_csv(dest / "analyses.csv", [c for c, _ in analysis_columns], analyses))
        if "parquet" in tables:
            written.append(_write_parquet(dest / "turns.parquet", turn_columns, turns()))
            written.append(_write_parquet(dest / "analyses.parquet", analysis_columns, analyses))
    return written
