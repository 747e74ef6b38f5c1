"""Agent scorecards: per agent and period, how their calls went, and where they differ from the team.

The agent is the call's metadata ``agent_id`` (set by manifests); calls without one
group under "unknown". A call's time is its metadata ``start_time`` (ISO 8601), else
when it was processed.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np

from .config import ScorecardsConfig
from .records import UNKNOWN

MAX_PATTERNS = 5  # pattern differences shown per agent


def call_time(row: dict) -> datetime:
    start = (row.get("metadata") or {}).get("start_time")
    if start not in (None, ""):
        try:
            t = datetime.fromisoformat(str(start))
            return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return datetime.fromtimestamp(row.get("processed_at") or 0.0, tz=timezone.utc)


def period_of(t: datetime, period: str) -> str:
    if period == "day":
        return t.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = t.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return t.strftime("%Y-%m")
    if period == "quarter":
        return f"{t.year}-Q{(t.month - 1) // 3 + 1}"
    return "all"


def agent_of(row: dict) -> str:
    agent = (row.get("metadata") or {}).get("agent_id")
    return str(agent) if agent not in (None, "") else UNKNOWN


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 3) if values else None


def summary(rows: Sequence[dict]) -> dict:
    """Calls handled, mean score and spread, resolution rate, handle time (or turns for text), repeat contacts."""
    scores = [r["efficiency_score"] for r in rows]
    timed = [r["handle_time"] for r in rows if r.get("modality") != "text"]
    return {
        "calls": len(rows),
        "mean_score": _mean(scores),
        "score_std": round(statistics.pstdev(scores), 3) if len(scores) > 1 else 0.0 if scores else None,
        "resolution_rate": _mean([1.0 if r["resolved"] else 0.0 for r in rows]),
        "avg_handle_time": _mean(timed),
        "avg_turns": _mean([r.get("turn_count") or 0 for r in rows]),
        "repeat_contact_rate": _mean([1.0 if r.get("repeat_contact") else 0.0 for r in rows]),
    }


def contains(sequence: Sequence[str], pattern: Sequence[str]) -> bool:
    """``pattern`` occurs in ``sequence`` in order, gaps allowed."""
    it = iter(sequence)
    return all(any(item == label for label in it) for item in pattern)


class PatternPresence:
    """Which calls contain which patterns: each distinct event sequence is checked once."""

    def __init__(self, labels: dict[str, tuple[str, ...]], patterns: Sequence[Sequence[str]]):
        self.patterns = [list(p) for p in patterns]
        distinct = {seq: i for i, seq in enumerate(dict.fromkeys(labels.values()))}
        self.has = np.array([[contains(seq, p) for p in patterns] for seq in distinct], dtype=bool).reshape(len(distinct), len(patterns))
        self.row = {call_id: distinct[seq] for call_id, seq in labels.items()}

    def counts(self, call_ids: Sequence[str]) -> np.ndarray:
        rows = [self.row[c] for c in call_ids if c in self.row]
        return self.has[rows].sum(axis=0) if rows else np.zeros(len(self.patterns), dtype=int)


def pattern_differences(agent_calls: Sequence[str], team_calls: Sequence[str], presence: PatternPresence, min_calls: int) -> list[dict]:
    """Patterns whose share of the agent's calls differs most from the rest of the team's."""
    if not agent_calls or not team_calls or not presence.patterns:
        return []
    mine, others = presence.counts(agent_calls), presence.counts(team_calls)
    out = []
    for j, pattern in enumerate(presence.patterns):
        if mine[j] < min_calls:
            continue
        agent_share, team_share = mine[j] / len(agent_calls), others[j] / len(team_calls)
        out.append({"events": pattern, "agent_share": round(float(agent_share), 3), "team_share": round(float(team_share), 3),
                    "difference": round(float(agent_share - team_share), 3), "agent_calls": int(mine[j])})
    out.sort(key=lambda d: (-abs(d["difference"]), d["events"]))
    return out[:MAX_PATTERNS]


def build_scorecards(rows: Sequence[dict], labels: dict[str, tuple[str, ...]], patterns: Sequence[Sequence[str]],
                     cfg: ScorecardsConfig) -> dict[str, dict]:
    """agent id -> {agent_id, period, ...summary over all calls, periods: [{period, ...summary}], patterns: [...]}."""
    by_agent: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_agent[agent_of(r)].append(r)
    presence = PatternPresence(labels, patterns)
    cards = {}
    for agent, mine in sorted(by_agent.items()):
        per_period: dict[str, list[dict]] = defaultdict(list)
        for r in mine:
            per_period[period_of(call_time(r), cfg.period)].append(r)
        ids = {r["call_id"] for r in mine}
        team = [r["call_id"] for r in rows if r["call_id"] not in ids]
        cards[agent] = {
            "agent_id": agent,
            "period": cfg.period,
            **summary(mine),
            "periods": [{"period": p, **summary(rs)} for p, rs in sorted(per_period.items())],
            "patterns": pattern_differences([r["call_id"] for r in mine], team, presence, cfg.min_pattern_calls),
        }
    return cards


def scorecards_from_store(store, cfg: ScorecardsConfig) -> dict[str, dict]:
    rows = store.outcome_rows()
    labels = {}
    patterns = [p["events"] for p in store.sequence_patterns()]
    if patterns:
        from .sequences import event_order

        per_call: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for call_id, index, label in store.conn.execute("SELECT call_id, event_index, label FROM events"):
            per_call[call_id].append((event_order(index), label))
        labels = {c: tuple(l for _, l in sorted(items)) for c, items in per_call.items()}
    return build_scorecards(rows, labels, patterns, cfg)


def agent_scorecards(store, cfg: ScorecardsConfig | None = None) -> dict[str, dict]:
    """agent id -> scorecard: the ones saved by the last run, else worked out now."""
    saved = store.scorecards() if hasattr(store, "scorecards") else []
    if saved:
        return {c["agent_id"]: c for c in saved}
    return scorecards_from_store(store, cfg or ScorecardsConfig())
