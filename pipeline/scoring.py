"""Per-call outcome and service-efficiency figures, from turns and their tags."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .config import ScoringConfig
from .records import AGENT, CUSTOMER, Call, CallAnalysis, Turn, TurnTags

# How much each issue state is worth on the score's resolution component.
RESOLUTION_VALUE = {"resolved": 1.0, "solution_offered": 0.6, "open": 0.5, "escalated": 0.3, "unresolved": 0.0}


def issue_state(tags: Sequence[TurnTags]) -> str:
    """The call's issue state from its turn acts, read in order.

    A confirmation only counts once something was stated or offered; a call where
    a problem was stated and nothing was offered is unresolved; a call with no
    problem statement at all stays open (nothing to judge).
    """
    stated = offered = confirmed = False
    for t in tags:
        if t.act == "problem_stated":
            stated = True
        elif t.act == "solution_offered":
            offered = True
        elif t.act == "solution_confirmed" and (stated or offered):
            confirmed = True
    if confirmed:
        return "resolved"
    if offered:
        return "solution_offered"
    if stated:
        return "unresolved"
    return "open"


def call_intent(turns: Sequence[Turn], tags: Sequence[TurnTags]) -> str | None:
    """The intent of the customer's problem statement(s); else the customer's most frequent intent."""
    stated = [t.intent for t in tags if t.act == "problem_stated" and t.intent and t.intent != "other"]
    if stated:
        return stated[0]
    counts = Counter(t.intent for turn, t in zip(turns, tags) if turn.role == CUSTOMER and t.intent and t.intent != "other")
    return counts.most_common(1)[0][0] if counts else None


def _union(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


def _speech_intervals(turn: Turn) -> list[tuple[float, float]]:
    # Word spans leave out the pauses inside a turn; fall back to the turn span.
    return [(w.start, w.end) for w in turn.words if w.end > w.start] or [(turn.start, turn.end)]


def talk_times(turns: Sequence[Turn]) -> dict[str, float]:
    per_role: dict[str, list[tuple[float, float]]] = {}
    for turn in turns:
        per_role.setdefault(turn.role, []).extend(_speech_intervals(turn))
    return {role: round(sum(e - s for s, e in _union(iv)), 3) for role, iv in sorted(per_role.items())}


def non_talk_time(turns: Sequence[Turn], handle_time: float, threshold: float) -> float:
    """Total of the silences longer than ``threshold``, the call's start and end included."""
    speech = _union([iv for turn in turns for iv in _speech_intervals(turn)])
    edges = [0.0] + [x for s, e in speech for x in (s, e)] + [handle_time]
    gaps = [edges[i + 1] - edges[i] for i in range(0, len(edges) - 1, 2)]
    return round(sum(g for g in gaps if g > threshold), 3)


def score_components(state: str, handle_time: float, talk: dict[str, float], silence: float, cfg: ScoringConfig) -> dict[str, float]:
    total_talk = sum(talk.values())
    components = {
        "resolution": RESOLUTION_VALUE[state],
        "silence": 1.0 - min(1.0, silence / handle_time) if handle_time > 0 else 0.0,
        "handle_time": min(1.0, cfg.target_handle_time / handle_time) if handle_time > 0 else 0.0,
    }
    if AGENT in talk and total_talk > 0:
        ratio = talk[AGENT] / total_talk
        worst = max(cfg.target_agent_talk_ratio, 1.0 - cfg.target_agent_talk_ratio)
        components["talk_balance"] = 1.0 - abs(ratio - cfg.target_agent_talk_ratio) / worst
    else:
        # Without known roles the balance cannot be judged; it is left out, not guessed.
        components["talk_balance"] = None
    return components


def efficiency_score(components: dict[str, float | None], weights: dict[str, float]) -> float:
    """100 x the weighted mean of the components that could be measured."""
    used = {k: w for k, w in weights.items() if components.get(k) is not None and w > 0}
    if not used:
        return 0.0
    return round(100.0 * sum(components[k] * w for k, w in used.items()) / sum(used.values()), 1)


def call_flags(state: str, turn_count: int, silence: float, handle_time: float, cfg: ScoringConfig) -> tuple[str, ...]:
    flags = []
    if turn_count == 0:
        flags.append("no_speech")
    if state in ("unresolved", "escalated"):
        flags.append(state)
    if handle_time > 0 and turn_count and silence / handle_time > cfg.long_silence_share:
        flags.append("long_silence")
    return tuple(flags)


def analyze_call(call: Call, tags: Sequence[TurnTags], cfg: ScoringConfig) -> CallAnalysis:
    handle_time = round(call.duration, 3)
    talk = talk_times(call.turns)
    silence = non_talk_time(call.turns, handle_time, cfg.silence_threshold)
    state = issue_state(tags)
    components = score_components(state, handle_time, talk, silence, cfg)
    return CallAnalysis(
        issue_state=state,
        intent=call_intent(call.turns, tags),
        handle_time=handle_time,
        talk_time=talk,
        non_talk_time=silence,
        turn_count=len(call.turns),
        efficiency_score=efficiency_score(components, cfg.weights),
        score_breakdown={k: (round(v, 3) if v is not None else None) for k, v in components.items()},
        flags=call_flags(state, len(call.turns), silence, handle_time, cfg),
    )
