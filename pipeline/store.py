"""The system of record for a run directory: one SQLite database.

A call is written in one transaction (its row, turns, tags, analysis and events),
so after any crash it is either wholly in the store or not at all. Everything a
person reads (JSON, pages, exports) is generated from here.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from .records import Call, CallAnalysis, Event, TurnTags
from .sequences import Pattern

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    finished_at REAL,
    config_json TEXT NOT NULL,
    model_versions_json TEXT NOT NULL,
    summary_json TEXT
);
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    source TEXT NOT NULL,
    audio_sha256 TEXT NOT NULL,
    duration REAL NOT NULL,
    channels INTEGER NOT NULL,
    language TEXT NOT NULL,
    metadata_json TEXT NOT NULL DEFAULT '{}',
    fingerprint TEXT NOT NULL DEFAULT '',
    processed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    call_id TEXT NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
    turn_index INTEGER NOT NULL,
    role TEXT NOT NULL,
    start REAL NOT NULL,
    end REAL NOT NULL,
    text TEXT NOT NULL,
    channel INTEGER,
    words_json TEXT NOT NULL,
    PRIMARY KEY (call_id, turn_index)
);
CREATE TABLE IF NOT EXISTS tags (
    call_id TEXT NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
    turn_index INTEGER NOT NULL,
    tags_json TEXT NOT NULL,
    act TEXT NOT NULL,
    intent TEXT,
    PRIMARY KEY (call_id, turn_index)
);
CREATE TABLE IF NOT EXISTS analyses (
    call_id TEXT PRIMARY KEY REFERENCES calls(call_id) ON DELETE CASCADE,
    issue_state TEXT NOT NULL,
    intent TEXT,
    efficiency_score REAL NOT NULL,
    handle_time REAL NOT NULL,
    analysis_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    call_id TEXT NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
    event_index INTEGER NOT NULL,
    time REAL NOT NULL,
    role TEXT NOT NULL,
    act TEXT NOT NULL,
    intent TEXT,
    label TEXT NOT NULL,
    PRIMARY KEY (call_id, event_index)
);
CREATE TABLE IF NOT EXISTS patterns (
    rank INTEGER PRIMARY KEY,
    events_json TEXT NOT NULL,
    length INTEGER NOT NULL,
    support INTEGER NOT NULL,
    occurrences INTEGER NOT NULL,
    resolution_rate REAL NOT NULL,
    computed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sequence_patterns (
    rank INTEGER PRIMARY KEY,
    events_json TEXT NOT NULL,
    length INTEGER NOT NULL,
    support INTEGER NOT NULL,
    support_share REAL NOT NULL,
    resolution_with REAL NOT NULL,
    resolution_without REAL,
    resolution_lift REAL,
    score_with REAL NOT NULL,
    score_without REAL,
    score_lift REAL,
    computed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS repeat_contacts (
    call_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    next_call_id TEXT NOT NULL,
    days REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS drivers (
    rank INTEGER PRIMARY KEY,
    language TEXT NOT NULL,
    label TEXT NOT NULL,
    keywords_json TEXT NOT NULL,
    volume INTEGER NOT NULL,
    share REAL NOT NULL,
    resolution_rate REAL,
    examples_json TEXT NOT NULL,
    call_ids_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS suggest_acts (
    context_json TEXT NOT NULL,
    act TEXT NOT NULL,
    moments INTEGER NOT NULL,
    resolved INTEGER NOT NULL,
    PRIMARY KEY (context_json, act)
);
CREATE TABLE IF NOT EXISTS suggest_responses (
    context_json TEXT NOT NULL,
    text TEXT NOT NULL,
    act TEXT NOT NULL,
    support INTEGER NOT NULL,
    resolved INTEGER NOT NULL,
    customer_texts_json TEXT NOT NULL,
    call_ids_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS suggest_responses_context ON suggest_responses (context_json);
CREATE TABLE IF NOT EXISTS scorecards (
    agent_id TEXT NOT NULL,
    period TEXT NOT NULL,
    card_json TEXT NOT NULL,
    PRIMARY KEY (agent_id, period)
);
CREATE TABLE IF NOT EXISTS errors (
    error_id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
"""


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)


class Store:
    FILENAME = "callpipe.sqlite"

    def __init__(self, out_dir: str | Path):
        self.path = Path(out_dir) / self.FILENAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=30.0)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA foreign_keys = ON")
        # WAL keeps readers (report, serve) unblocked while a run writes.
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------

    def start_run(self, config: dict, model_versions: dict) -> int:
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO runs (started_at, config_json, model_versions_json) VALUES (?, ?, ?)",
                (time.time(), _dumps(config), _dumps(model_versions)),
            )
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, summary: dict, model_versions: dict) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE runs SET finished_at = ?, summary_json = ?, model_versions_json = ? WHERE run_id = ?",
                (time.time(), _dumps(summary), _dumps(model_versions), run_id),
            )

    def save_call(
        self, run_id: int, call: Call, tags: Sequence[TurnTags], analysis: CallAnalysis, events: Sequence[Event], fingerprint: str = ""
    ) -> None:
        """Replace whatever the store had for this call, all in one transaction."""
        with self.conn:
            self.conn.execute("DELETE FROM calls WHERE call_id = ?", (call.call_id,))
            self.conn.execute(
                "INSERT INTO calls (call_id, run_id, source, audio_sha256, duration, channels, language, metadata_json, fingerprint, processed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (call.call_id, run_id, call.source, call.audio_sha256, call.duration, call.channels, call.language,
                 _dumps(call.metadata), fingerprint, time.time()),
            )
            self.conn.executemany(
                "INSERT INTO turns (call_id, turn_index, role, start, end, text, channel, words_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (call.call_id, t.index, t.role, t.start, t.end, t.text, t.channel, _dumps([dataclasses.asdict(w) for w in t.words]))
                    for t in call.turns
                ],
            )
            self.conn.executemany(
                "INSERT INTO tags (call_id, turn_index, tags_json, act, intent) VALUES (?, ?, ?, ?, ?)",
                [(call.call_id, t.index, _dumps(dataclasses.asdict(tag)), tag.act, tag.intent) for t, tag in zip(call.turns, tags)],
            )
            self.conn.execute(
                "INSERT INTO analyses (call_id, issue_state, intent, efficiency_score, handle_time, analysis_json) VALUES (?, ?, ?, ?, ?, ?)",
                (call.call_id, analysis.issue_state, analysis.intent, analysis.efficiency_score, analysis.handle_time, _dumps(dataclasses.asdict(analysis))),
            )
            self.conn.executemany(
                "INSERT INTO events (call_id, event_index, time, role, act, intent, label) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(call.call_id, e.index, e.time, e.role, e.act, e.intent, e.label) for e in events],
            )

    def record_error(self, run_id: int, source: str, reason: str) -> None:
        with self.conn:
            self.conn.execute("INSERT INTO errors (run_id, source, reason, at) VALUES (?, ?, ?, ?)", (run_id, source, reason, time.time()))

    def save_patterns(self, patterns: Sequence[Pattern]) -> None:
        now = time.time()
        with self.conn:
            self.conn.execute("DELETE FROM patterns")
            self.conn.executemany(
                "INSERT INTO patterns (rank, events_json, length, support, occurrences, resolution_rate, computed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(i, _dumps(list(p.events)), len(p.events), p.support, p.occurrences, p.resolution_rate, now) for i, p in enumerate(patterns)],
            )

    # --- reading -------------------------------------------------------------------------

    def call_fingerprint(self, call_id: str) -> str | None:
        row = self.conn.execute("SELECT fingerprint FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        return row[0] if row else None

    def call_ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT call_id FROM calls ORDER BY call_id")]

    def call_summaries(self) -> list[dict]:
        rows = self.conn.execute(
            "SELECT c.call_id, c.source, c.duration, c.channels, c.language, c.processed_at,"
            " a.issue_state, a.intent, a.efficiency_score, a.handle_time,"
            " (SELECT COUNT(*) FROM turns t WHERE t.call_id = c.call_id) AS turn_count"
            " FROM calls c JOIN analyses a USING (call_id) ORDER BY c.call_id"
        )
        return [dict(r) for r in rows]

    def call_record(self, call_id: str) -> dict:
        """Everything stored about one call, as plain JSON-ready data."""
        row = self.conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        if row is None:
            raise KeyError(call_id)
        call = dict(row)
        call["metadata"] = json.loads(call.pop("metadata_json"))
        tags = {r["turn_index"]: json.loads(r["tags_json"]) for r in self.conn.execute("SELECT turn_index, tags_json FROM tags WHERE call_id = ?", (call_id,))}
        turns = []
        for r in self.conn.execute("SELECT * FROM turns WHERE call_id = ? ORDER BY turn_index", (call_id,)):
            turn = dict(r)
            turn["words"] = json.loads(turn.pop("words_json"))
            turn.pop("call_id")
            turn["tags"] = tags.get(turn["turn_index"], {})
            turns.append(turn)
        analysis = self.conn.execute("SELECT analysis_json FROM analyses WHERE call_id = ?", (call_id,)).fetchone()
        events = [dict(r) for r in self.conn.execute("SELECT event_index, time, role, act, intent, label FROM events WHERE call_id = ? ORDER BY event_index", (call_id,))]
        call["turns"] = turns
        call["analysis"] = json.loads(analysis[0]) if analysis else None
        call["events"] = events
        return call

    def event_sequences(self) -> Iterator[tuple[list[str], bool]]:
        """(event labels in order, whether the call was resolved) for every stored call."""
        resolved = {r[0]: r[1] == "resolved" for r in self.conn.execute("SELECT call_id, issue_state FROM analyses")}
        current: str | None = None
        labels: list[str] = []
        for call_id, label in self.conn.execute("SELECT call_id, label FROM events ORDER BY call_id, event_index"):
            if call_id != current:
                if current is not None:
                    yield labels, resolved.get(current, False)
                current, labels = call_id, []
            labels.append(label)
        if current is not None:
            yield labels, resolved.get(current, False)

    def patterns(self) -> list[dict]:
        rows = self.conn.execute("SELECT events_json, support, occurrences, resolution_rate FROM patterns ORDER BY rank")
        return [{"events": json.loads(r[0]), "support": r[1], "occurrences": r[2], "resolution_rate": r[3]} for r in rows]

    # --- cross-call analytics (sequences, suggest, drivers, scorecards) -------------------------

    def _replace_all(self, table: str, sql: str, rows) -> None:
        with self.conn:
            self.conn.execute(f"DELETE FROM {table}")
            self.conn.executemany(sql, rows)

    def save_sequence_patterns(self, patterns) -> None:
        now = time.time()
        self._replace_all(
            "sequence_patterns",
            "INSERT INTO sequence_patterns (rank, events_json, length, support, support_share, resolution_with, resolution_without,"
            " resolution_lift, score_with, score_without, score_lift, computed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(i, _dumps(list(p.events)), len(p.events), p.support, p.support_share, p.resolution_with, p.resolution_without,
              p.resolution_lift, p.score_with, p.score_without, p.score_lift, now) for i, p in enumerate(patterns)],
        )

    def sequence_patterns(self) -> list[dict]:
        """Sequential patterns (PrefixSpan) with support and lift on resolution and score, most supported first."""
        rows = self.conn.execute(
            "SELECT events_json, support, support_share, resolution_with, resolution_without, resolution_lift,"
            " score_with, score_without, score_lift FROM sequence_patterns ORDER BY rank"
        )
        out = []
        for r in rows:
            d = dict(r)
            d["events"] = json.loads(d.pop("events_json"))
            out.append(d)
        return out

    def save_repeat_contacts(self, rows: Sequence[tuple[str, str, str, float]]) -> None:
        """(call_id, customer_id, next_call_id, days) for each call the same customer called about again."""
        self._replace_all("repeat_contacts", "INSERT INTO repeat_contacts (call_id, customer_id, next_call_id, days) VALUES (?, ?, ?, ?)", rows)

    def repeat_contacts(self) -> dict[str, dict]:
        rows = self.conn.execute("SELECT call_id, customer_id, next_call_id, days FROM repeat_contacts")
        return {r["call_id"]: {"customer_id": r["customer_id"], "next_call_id": r["next_call_id"], "days": r["days"]} for r in rows}

    def outcome_rows(self) -> list[dict]:
        """Per call: id, when, metadata, issue state, score, handle time, turns, analysis metrics and repeat contact."""
        repeats = self.repeat_contacts()
        rows = self.conn.execute(
            "SELECT c.call_id, c.language, c.metadata_json, c.processed_at, a.issue_state, a.intent, a.efficiency_score,"
            " a.handle_time, a.analysis_json FROM calls c JOIN analyses a USING (call_id) ORDER BY c.call_id"
        )
        out = []
        for r in rows:
            analysis = json.loads(r["analysis_json"])
            out.append({
                "call_id": r["call_id"], "language": r["language"], "metadata": json.loads(r["metadata_json"]),
                "processed_at": r["processed_at"], "issue_state": r["issue_state"], "intent": r["intent"],
                "efficiency_score": r["efficiency_score"], "handle_time": r["handle_time"],
                "turn_count": analysis.get("turn_count"), "modality": analysis.get("modality", "audio"),
                "metrics": analysis.get("metrics") or {}, "repeat_contact": r["call_id"] in repeats,
                "resolved": r["issue_state"] == "resolved" and r["call_id"] not in repeats,
            })
        return out

    def call_outcomes(self) -> Iterator:
        """CallOutcome (event labels in time order, resolved, score) for every call.

        A call followed by a repeat contact counts as not resolved."""
        from .sequences import CallOutcome, event_order

        repeats = self.repeat_contacts()
        outcome = {r[0]: (r[1] == "resolved" and r[0] not in repeats, r[2])
                   for r in self.conn.execute("SELECT call_id, issue_state, efficiency_score FROM analyses")}
        current, items = None, []
        for call_id, index, label in self.conn.execute("SELECT call_id, event_index, label FROM events ORDER BY call_id"):
            if call_id != current:
                if current is not None and current in outcome:
                    yield CallOutcome(tuple(l for _, l in sorted(items)), *outcome[current])
                current, items = call_id, []
            items.append((event_order(index), label))
        if current is not None and current in outcome:
            yield CallOutcome(tuple(l for _, l in sorted(items)), *outcome[current])

    def _turn_rows(self, where: str = "", params: tuple = ()):
        from .sequences import BETWEEN_TURNS_BASE

        return self.conn.execute(
            "SELECT t.call_id, t.turn_index, t.role, t.text, g.act, e.label FROM turns t"
            " JOIN tags g ON g.call_id = t.call_id AND g.turn_index = t.turn_index"
            f" LEFT JOIN events e ON e.call_id = t.call_id AND e.event_index = t.turn_index AND e.event_index < {BETWEEN_TURNS_BASE}"
            f" {where} ORDER BY t.call_id, t.turn_index",
            params,
        )

    def turn_sequences(self) -> Iterator[tuple[str, list[str], list[str], list[str], list[str], bool]]:
        """(call_id, turn labels, roles, acts, texts, resolved) for every call, in turn order."""
        repeats = self.repeat_contacts()
        resolved = {r[0]: r[1] == "resolved" and r[0] not in repeats for r in self.conn.execute("SELECT call_id, issue_state FROM analyses")}
        current, cols = None, None
        for call_id, _index, role, text, act, label in self._turn_rows():
            if call_id != current:
                if current is not None:
                    yield (current, *cols, resolved.get(current, False))
                current, cols = call_id, ([], [], [], [])
            cols[0].append(label or f"{role}:{act}")
            cols[1].append(role)
            cols[2].append(act)
            cols[3].append(text)
        if current is not None:
            yield (current, *cols, resolved.get(current, False))

    def call_turn_sequence(self, call_id: str) -> tuple[list[str], list[str], list[str], list[int]] | None:
        """(turn labels, roles, texts, turn indexes) of one call; None when it is not stored."""
        rows = list(self._turn_rows("WHERE t.call_id = ?", (call_id,)))
        if not rows:
            return None if self.conn.execute("SELECT 1 FROM calls WHERE call_id = ?", (call_id,)).fetchone() is None else ([], [], [], [])
        return ([r[5] or f"{r[2]}:{r[4]}" for r in rows], [r[2] for r in rows], [r[3] for r in rows], [r[1] for r in rows])

    def save_suggest_index(self, act_rows, response_rows) -> None:
        with self.conn:
            self.conn.execute("DELETE FROM suggest_acts")
            self.conn.execute("DELETE FROM suggest_responses")
            self.conn.executemany("INSERT INTO suggest_acts (context_json, act, moments, resolved) VALUES (?, ?, ?, ?)", act_rows)
            self.conn.executemany(
                "INSERT INTO suggest_responses (context_json, text, act, support, resolved, customer_texts_json, call_ids_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", response_rows)

    def suggest_act_counts(self, context_json: str) -> dict[str, tuple[int, int]]:
        rows = self.conn.execute("SELECT act, moments, resolved FROM suggest_acts WHERE context_json = ?", (context_json,))
        return {r[0]: (r[1], r[2]) for r in rows}

    def suggest_responses(self, context_json: str) -> list[dict]:
        rows = self.conn.execute(
            "SELECT text, act, support, resolved, customer_texts_json, call_ids_json FROM suggest_responses WHERE context_json = ?",
            (context_json,))
        return [{"text": r[0], "act": r[1], "support": r[2], "resolved": r[3], "customer_texts": json.loads(r[4]),
                 "call_ids": json.loads(r[5])} for r in rows]

    def save_drivers(self, drivers: Sequence[dict]) -> None:
        self._replace_all(
            "drivers",
            "INSERT INTO drivers (rank, language, label, keywords_json, volume, share, resolution_rate, examples_json, call_ids_json)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(i, d["language"], d["label"], _dumps(d["keywords"]), d["volume"], d["share"], d.get("resolution_rate"),
              _dumps(d.get("examples", [])), _dumps(d.get("call_ids", []))) for i, d in enumerate(drivers)],
        )

    def drivers(self) -> list[dict]:
        """Call drivers: topics of the customers' problem statements, largest first."""
        rows = self.conn.execute(
            "SELECT language, label, keywords_json, volume, share, resolution_rate, examples_json, call_ids_json FROM drivers ORDER BY rank")
        return [{"language": r[0], "label": r[1], "keywords": json.loads(r[2]), "volume": r[3], "share": r[4],
                 "resolution_rate": r[5], "examples": json.loads(r[6]), "call_ids": json.loads(r[7])} for r in rows]

    def save_scorecards(self, cards: Sequence[dict]) -> None:
        self._replace_all("scorecards", "INSERT INTO scorecards (agent_id, period, card_json) VALUES (?, ?, ?)",
                          [(c["agent_id"], c["period"], _dumps(c)) for c in cards])

    def scorecards(self) -> list[dict]:
        return [json.loads(r[0]) for r in self.conn.execute("SELECT card_json FROM scorecards ORDER BY agent_id, period")]

    def errors(self, run_id: int | None = None) -> list[dict]:
        if run_id is None:
            rows = self.conn.execute("SELECT run_id, source, reason, at FROM errors ORDER BY error_id")
        else:
            rows = self.conn.execute("SELECT run_id, source, reason, at FROM errors WHERE run_id = ? ORDER BY error_id", (run_id,))
        return [dict(r) for r in rows]

    def runs(self) -> list[dict]:
        rows = self.conn.execute("SELECT * FROM runs ORDER BY run_id")
        out = []
        for r in rows:
            run = dict(r)
            for key in ("config_json", "model_versions_json", "summary_json"):
                run[key[: -len("_json")]] = json.loads(run.pop(key)) if run[key] else None
            out.append(run)
        return out
