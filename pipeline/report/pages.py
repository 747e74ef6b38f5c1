"""Render the calls index and one page per call with Jinja2 (autoescaped: transcripts are untrusted text)."""

from __future__ import annotations

import os
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from ..store import Store


def _env() -> Environment:
    env = Environment(loader=PackageLoader("pipeline.report", "templates"), autoescape=select_autoescape(["html"]))
    env.filters["clock"] = lambda s: f"{int(s // 60)}:{s % 60:04.1f}" if s is not None else ""
    return env


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(store: Store, out_dir: str | Path) -> Path:
    """Write DIR/report/index.html and DIR/report/calls/<call_id>.html; return the index path."""
    report_dir = Path(out_dir) / "report"
    env = _env()
    calls = store.call_summaries()
    for row in calls:
        row["page"] = f"calls/{row['call_id']}.html"
    _write(
        report_dir / "index.html",
        env.get_template("index.html").render(calls=calls, patterns=store.patterns()[:20], errors=store.errors()),
    )
    call_template = env.get_template("call.html")
    for row in calls:
        record = store.call_record(row["call_id"])
        page = report_dir / row["page"]
        # Audio is referenced where it lies, not copied into the report.
        audio_href = Path(os.path.relpath(record["source"], page.parent)).as_posix()
        _write(page, call_template.render(call=record, audio_href=audio_href))
    return report_dir / "index.html"
