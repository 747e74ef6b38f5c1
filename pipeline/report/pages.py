"""Write the review pages from the store: calls index, one page per call, agents, patterns.

Everything is static files under DIR/report/ (publish the folder as it is, or open it
from disk); `callpipe serve` only adds the audio. Jinja2 autoescapes every page, and the
pages' scripts insert data with textContent, never as markup: transcripts are untrusted.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
from collections import Counter, defaultdict
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape

from .. import remote, scoring
from ..export import PII_FLAG, call_flags, call_row, safe_name, shareable_record, turn_text
from ..records import UNKNOWN
from ..store import Store
from . import analytics, plots
from .search import SearchIndex

# The calls index's columns: (row key, heading, kind). index.js builds the table, its
# filters and its sorting from this list, so a column is added here and nowhere else.
INDEX_COLUMNS = (
    ("call_id", "Call", "text"),
    ("date", "Date", "date"),
    ("agent_id", "Agent", "text"),
    ("customer_id", "Customer", "text"),
    ("duration", "Duration", "duration"),
    ("language", "Language", "enum"),
    ("intent", "Intent", "enum"),
    ("issue_state", "Issue state", "enum"),
    ("efficiency_score", "Score", "score"),
    ("sentiment_change", "Sentiment change", "signed"),
    ("flags", "Flags", "flags"),
)
FLAG_LABELS = {
    "unresolved": "unresolved",
    "escalated": "escalated",
    PII_FLAG: "PII found",
    "long_silence": "long silence",
    "no_speech": "no speech",
}
UNASSIGNED = UNKNOWN  # the agent of calls without an agent_id, as in the scorecards
SUGGESTIONS_PER_TURN = 3
ROLE_ORDER = ("agent", "customer", "unknown")


def _clock(seconds) -> str:
    if seconds is None:
        return ""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _env() -> Environment:
    env = Environment(loader=PackageLoader("pipeline.report", "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["clock"] = _clock
    env.filters["human"] = lambda s: str(s).replace("_", " ") if s is not None else "—"
    env.filters["pct"] = lambda x: f"{100 * x:.0f}%" if x is not None else "—"
    env.filters["num"] = lambda x, digits=1: f"{x:.{digits}f}" if x is not None else "—"
    env.filters["signed"] = lambda x: f"{x:+.2f}" if x is not None else "—"
    env.filters["datetime"] = lambda t: datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if t else "—"
    env.globals["flag_labels"] = FLAG_LABELS
    return env


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _prune(folder: Path, pattern: str, keep: set[Path]) -> None:
    """Remove pages of calls or agents that are no longer in the store."""
    for path in folder.glob(pattern):
        if path not in keep:
            path.unlink()


def _copy_static(report_dir: Path) -> None:
    static = resources.files("pipeline.report") / "static"
    target = report_dir / "static"
    target.mkdir(parents=True, exist_ok=True)
    for item in static.iterdir():
        if item.is_file():
            (target / item.name).write_bytes(item.read_bytes())


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


# --- one call ----------------------------------------------------------------------------------

def _audio_sources(source: str, name: str, page_dir: Path, report_dir: Path, copy_audio: bool) -> tuple[list[str], bool]:
    """<source> URLs for a call's audio, tried in order by the browser, and whether a file is there.

    report/audio/<name><ext> holds a copy when asked for (--copy-audio), and is the URL
    `callpipe serve` answers from the store. Without a copy, the original file follows,
    by a relative path, for pages opened from disk.
    """
    if remote.is_url(source):  # a browser cannot open s3:// and the like: only a copy made here can play
        served = report_dir / "audio" / f"{name}{remote.pure(source).suffix.lower()}"
        if copy_audio and not served.exists():
            try:
                remote.download(source, served)
            except remote.RemoteError:
                pass  # the page says the audio is not found
        return [quote(Path(os.path.relpath(served, page_dir)).as_posix())], served.is_file()
    original = Path(source)
    served = report_dir / "audio" / f"{name}{original.suffix.lower()}"
    if copy_audio and original.is_file():
        if not served.exists() or served.stat().st_size != original.stat().st_size or served.stat().st_mtime < original.stat().st_mtime:
            served.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(original, served)
    urls = [quote(Path(os.path.relpath(served, page_dir)).as_posix())]
    if not served.exists():
        urls.append(quote(Path(os.path.relpath(original, page_dir)).as_posix()))
    return urls, served.is_file() or original.is_file()


def _ticks(duration: float) -> list[float]:
    step = next((s for s in (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800) if duration / s <= 10), 3600)
    return [t for t in range(0, int(duration) + 1, step)]


def _timeline(record: dict) -> dict:
    """The call's events as percentages of its length: turns on one lane per role, and the
    moments between turns (holds, interruptions, sentiment shifts, entities) on their own."""
    turns = {t["turn_index"]: t for t in record["turns"]}
    duration = max([record.get("duration") or 0.0] + [t["end"] for t in record["turns"]]) or 1.0
    lanes: dict[str, list[dict]] = defaultdict(list)
    moments: list[dict] = []
    for e in record.get("events") or []:
        turn = turns.get(e["event_index"])
        placed = {"time": e["time"], "left": round(100 * e["time"] / duration, 3), "role": e["role"], "act": e["act"],
                  "intent": e.get("intent")}
        if turn is None:
            kind = "entity" if e["act"].startswith("entity_") else e["act"]
            moments.append({**placed, "kind": kind, "what": e["act"].removeprefix("entity_") if kind == "entity" else e["act"]})
        else:
            lanes[e["role"]].append({**placed, "width": round(max(0.5, 100 * (turn["end"] - e["time"]) / duration), 3)})
    ordered = [(role, lanes[role]) for role in ROLE_ORDER if role in lanes]
    ordered += [(role, events) for role, events in lanes.items() if role not in ROLE_ORDER]
    ticks = [{"label": _clock(t), "left": round(100 * t / duration, 3)} for t in _ticks(duration)]
    return {"duration": duration, "lanes": ordered, "moments": moments, "ticks": ticks}


def _breakdown(analysis: dict, weights: dict) -> list[dict]:
    """Each score component with its weight and the points it adds to the 0-100 score."""
    components = analysis.get("score_breakdown") or {}
    used = {k: weights.get(k, 0.0) for k, v in components.items() if v is not None and weights.get(k, 0.0) > 0}
    total = sum(used.values())
    described = getattr(scoring, "COMPONENTS", {})
    return [
        {"name": k, "value": v, "weight": weights.get(k), "what": described.get(k, ""),
         "points": 100 * v * used[k] / total if k in used and total else None}
        for k, v in sorted(components.items())
    ]


# --- the whole report --------------------------------------------------------------------------

class _Report:
    def __init__(self, store: Store, out_dir: Path, copy_audio: bool):
        self.store = store
        self.dir = Path(out_dir) / "report"
        self.copy_audio = copy_audio
        self.env = _env()
        self.runs = {r["run_id"]: r for r in store.runs()}
        self.generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    def render(self, path: Path, template: str, **context) -> Path:
        root = Path(os.path.relpath(self.dir, path.parent)).as_posix()
        context.update(root="" if root == "." else root + "/", generated=self.generated)
        return _write(path, self.env.get_template(template).render(**context))

    def weights(self, run_id: int) -> dict:
        config = (self.runs.get(run_id) or {}).get("config") or {}
        return (config.get("scoring") or {}).get("weights") or {}

    def call_page(self, record: dict, row: dict, page: Path) -> None:
        suggested = analytics.suggestions(self.store, record["call_id"], SUGGESTIONS_PER_TURN)
        analysis = record.get("analysis") or {}
        # Chats and transcripts imported as text have no audio and no times.
        timed = "text" not in (analysis.get("modality"), (record.get("metadata") or {}).get("modality"))
        sources, found_audio = _audio_sources(record["source"], safe_name(record["call_id"]), page.parent, self.dir, self.copy_audio)
        self.render(
            page, "call.html", nav="calls", timed=timed,
            call=record, row=row, analysis=analysis,
            turns=[{**t, "shown_text": turn_text(t)} for t in record["turns"]],
            audio_sources=sources, audio_found=found_audio,
            breakdown=_breakdown(analysis, self.weights(record["run_id"])),
            timeline=_timeline(record),
            suggestions=suggested,
        )

    def calls(self) -> list[dict]:
        """Write every call's page, the index data and the search index; return the calls' rows."""
        rows: list[dict] = []
        data_rows: list[list] = []
        search = SearchIndex()
        pages: set[Path] = set()
        for call_id in self.store.call_ids():
            record = shareable_record(self.store.call_record(call_id))
            row = call_row(record)
            row["flag_list"] = call_flags(record)
            row["page"] = f"calls/{safe_name(call_id)}.html"
            row["agent_page"] = f"agents/{safe_name(row['agent_id'] or UNASSIGNED)}.html"
            page = self.dir / row["page"]
            self.call_page(record, row, page)
            pages.add(page)
            search.add(len(rows), (turn_text(t) for t in record["turns"]))
            rows.append(row)
            data_rows.append([row["page"]] + [row["flag_list"] if key == "flags" else row[key] for key, _, _ in INDEX_COLUMNS])
        _prune(self.dir / "calls", "*.html", pages)
        search.write(self.dir / "search")
        data = {
            "columns": [{"key": k, "label": label, "kind": kind} for k, label, kind in INDEX_COLUMNS],
            "flags": FLAG_LABELS,
            "rows": data_rows,
        }
        _write(self.dir / "data" / "calls.js", "window.CALLPIPE_CALLS = " + json.dumps(data, ensure_ascii=True, separators=(",", ":")) + ";\n")
        return rows

    def run_labels(self) -> dict[int, str]:
        return {
            run_id: f"#{run_id} {datetime.fromtimestamp(run['started_at'], tz=timezone.utc):%m-%d %H:%M}"
            for run_id, run in self.runs.items()
        }

    def agents(self, rows: list[dict]) -> None:
        by_agent: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            by_agent[row["agent_id"] or UNASSIGNED].append(row)
        cards = analytics.scorecards(self.store)
        labels = self.run_labels()
        team = _stats(rows)
        agents = []
        pages: set[Path] = set()
        plot_files: set[Path] = set()
        for agent, agent_rows in sorted(by_agent.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            name = safe_name(agent)
            page = self.dir / agent_rows[0]["agent_page"]
            plot = plots.agent_scorecard(self.dir / "plots" / f"agent-{name}.svg", agent, agent_rows, rows, labels)
            entry = {"agent": agent, "page": f"agents/{name}.html", "stats": _stats(agent_rows), "has_id": agent != UNASSIGNED}
            card = None if cards is None else cards.get(agent, {})
            self.render(page, "agent.html", nav="agents", entry=entry, team=team, plot=f"../plots/{plot.name}", card=card,
                        calls=sorted(agent_rows, key=lambda r: r["date"], reverse=True)[:50])
            agents.append(entry)
            pages.add(page)
            plot_files.add(plot)
        _prune(self.dir / "agents", "*.html", pages)
        _prune(self.dir / "plots", "agent-*.svg", plot_files)
        overview = None
        if agents:
            shown = [a for a in agents if a["stats"]["mean_score"] is not None][:30]
            overview = plots.bar_chart(self.dir / "plots" / "agents.svg", [a["agent"] for a in shown],
                                       [round(a["stats"]["mean_score"], 1) for a in shown],
                                       "Mean efficiency score per agent (most calls first)", "mean score")
        self.render(self.dir / "agents.html", "agents.html", nav="agents", unassigned=UNASSIGNED, agents=agents, team=team,
                    overview=f"plots/{overview.name}" if overview else None, scorecards_available=cards is not None)

    def patterns(self, rows: list[dict]) -> None:
        intents = Counter(row["intent"] or "(none)" for row in rows).most_common()
        intent_plot = None
        if intents:
            top = intents[:25]
            intent_plot = plots.bar_chart(self.dir / "plots" / "intents.svg", [i for i, _ in top], [n for _, n in top],
                                          "Calls per customer intent", "calls").name
        topics = analytics.drivers(self.store)
        topic_plot = None
        if topics:
            top = topics[:25]
            topic_plot = plots.bar_chart(self.dir / "plots" / "drivers.svg", [d["label"] for d in top], [d["volume"] for d in top],
                                         "Calls per driver", "calls").name
        sequences = analytics.sequence_patterns(self.store)
        self.render(self.dir / "patterns.html", "patterns.html", nav="patterns", sequences=sequences,
                    ngrams=self.store.patterns(), intents=intents, intent_plot=intent_plot, drivers=topics,
                    driver_plot=topic_plot, total=len(rows))

    def index(self, rows: list[dict]) -> Path:
        latest = max(self.runs.values(), key=lambda r: r["run_id"], default=None)
        errors = self.store.errors(latest["run_id"]) if latest else []
        return self.render(self.dir / "index.html", "index.html", nav="calls", wide=True, total=len(rows), run=latest,
                           summary=(latest or {}).get("summary") or {}, errors=errors[:200], more_errors=max(0, len(errors) - 200),
                           flagged=Counter(f for row in rows for f in row["flag_list"]))


def _stats(rows: list[dict]) -> dict:
    return {
        "calls": len(rows),
        "mean_score": _mean(r["efficiency_score"] for r in rows),
        "resolved": _mean(1.0 if r["issue_state"] == "resolved" else 0.0 for r in rows),
        "mean_handle_time": _mean(r["handle_time"] for r in rows),
        "talk_ratio": _mean(r["agent_talk_ratio"] for r in rows),
        "sentiment_change": _mean(r["sentiment_change"] for r in rows),
        "flagged": sum(1 for r in rows if r["flag_list"]),
    }


def write_report(store: Store, out_dir: str | Path, copy_audio: bool = False) -> Path:
    """Write DIR/report/ (index, calls, agents, patterns, plots, scripts); return the index path.

    The audio stays where it is unless ``copy_audio``: then it is copied to report/audio/
    so the folder can be published on its own.
    """
    report = _Report(store, Path(out_dir), copy_audio)
    _copy_static(report.dir)
    rows = report.calls()
    report.agents(rows)
    report.patterns(rows)
    return report.index(rows)
