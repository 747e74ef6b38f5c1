"""The report's plots: matplotlib figures saved as SVG files (no pyplot, no display needed)."""

from __future__ import annotations

import io
import statistics
from collections.abc import Sequence
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

# The same colours as report.css, so a plot and the page around it agree.
AGENT_COLOR = "#1a56c4"
TEAM_COLOR = "#8a94a6"
BAR_COLOR = "#2f6f8f"

_RC = {
    # Text stays text: smaller files, selectable, and read by screen readers.
    "svg.fonttype": "none",
    # Fixed ids and no date: the same data gives the same file, night after night.
    "svg.hashsalt": "callpipe",
    # Agent ids and topic words are data; a '$' in one must not start a formula.
    "text.parse_math": False,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
}


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _box(ax, agent: Sequence[float], team: Sequence[float], title: str, unit: str) -> None:
    """Agent against team as two horizontal boxes; an empty side says so instead of failing."""
    data = [list(team), list(agent)]
    if not any(data):
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color=TEAM_COLOR)
    else:
        positions = [i + 1 for i, d in enumerate(data) if d]
        parts = ax.boxplot([d for d in data if d], positions=positions, orientation="horizontal", widths=0.55,
                           patch_artist=True, showmeans=True, meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black"})
        colors = [c for c, d in zip((TEAM_COLOR, AGENT_COLOR), data) if d]
        for patch, color in zip(parts["boxes"], colors):
            patch.set_facecolor(color)
            patch.set_alpha(0.6)
    ax.set_yticks([1, 2], ["team", "agent"])
    ax.set_ylim(0.4, 2.6)
    ax.set_title(title)
    ax.set_xlabel(unit)


def agent_scorecard(path: Path, agent: str, agent_rows: Sequence[dict], team_rows: Sequence[dict], run_labels: dict[int, str]) -> Path:
    """Four panels for one agent against the whole team: score distribution, score trend over
    runs, agent talk ratio, handle time."""
    with matplotlib.rc_context(_RC):
        # Fixed margins: a layout engine would triple the time per figure, for hundreds of agents.
        fig = Figure(figsize=(9, 6.4))
        fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.09, hspace=0.62, wspace=0.22)
        (dist, trend), (talk, handle) = fig.subplots(2, 2)
        fig.suptitle(f"Agent {agent}: {len(agent_rows)} call(s) against the team's {len(team_rows)}", fontsize=11)

        bins = list(range(0, 101, 10))
        scores = [r["efficiency_score"] for r in agent_rows if r["efficiency_score"] is not None]
        team_scores = [r["efficiency_score"] for r in team_rows if r["efficiency_score"] is not None]
        # Shares of calls, not counts, so an agent with few calls compares with the whole team.
        if team_scores:
            dist.hist(team_scores, bins=bins, weights=[100 / len(team_scores)] * len(team_scores), histtype="step",
                      color=TEAM_COLOR, linewidth=2, label="team")
        if scores:
            dist.hist(scores, bins=bins, weights=[100 / len(scores)] * len(scores), color=AGENT_COLOR, alpha=0.75, label="agent")
        dist.set_title("Efficiency score distribution")
        dist.set_xlabel("score (0-100)")
        dist.set_ylabel("% of calls")
        dist.set_xlim(0, 100)
        dist.legend(frameon=False)

        runs = sorted(run_labels)
        for rows, color, label, style in ((team_rows, TEAM_COLOR, "team", "--"), (agent_rows, AGENT_COLOR, "agent", "-")):
            points = [(i, _mean([r["efficiency_score"] for r in rows if r["run_id"] == run and r["efficiency_score"] is not None]))
                      for i, run in enumerate(runs)]
            points = [(i, m) for i, m in points if m is not None]
            if points:
                trend.plot([i for i, _ in points], [m for _, m in points], style, marker="o", color=color, label=label)
        trend.set_xticks(range(len(runs)), [run_labels[r] for r in runs], rotation=30, ha="right")
        trend.set_title("Mean score per run")
        trend.set_ylabel("mean score")
        trend.set_ylim(0, 100)
        trend.legend(frameon=False)

        def values(rows, key, scale=1.0):
            return [r[key] * scale for r in rows if r.get(key) is not None]

        _box(talk, values(agent_rows, "agent_talk_ratio", 100), values(team_rows, "agent_talk_ratio", 100),
             "Agent share of talk time", "% of talk time")
        _box(handle, values(agent_rows, "handle_time", 1 / 60), values(team_rows, "handle_time", 1 / 60),
             "Handle time", "minutes")
        return _save(fig, path)


def bar_chart(path: Path, labels: Sequence[str], values: Sequence[float], title: str, xlabel: str) -> Path:
    """Horizontal bars, largest first at the top."""
    with matplotlib.rc_context(_RC):
        width, height = 7.0, 1.1 + 0.26 * max(1, len(labels))
        # Room on the left for the longest label (about 0.07 inch a character at this size).
        left = min(0.5, (0.3 + 0.07 * max((len(str(label)) for label in labels), default=4)) / width)
        fig = Figure(figsize=(width, height))
        fig.subplots_adjust(left=left, right=0.95, top=1 - 0.45 / height, bottom=0.55 / height)
        ax = fig.subplots()
        positions = list(range(len(labels)))[::-1]
        ax.barh(positions, values, color=BAR_COLOR)
        ax.set_yticks(positions, labels)
        for y, v in zip(positions, values):
            ax.annotate(f"{v:g}", (v, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.margins(x=0.12)
        return _save(fig, path)
