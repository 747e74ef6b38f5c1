"""Per-call outcome and service-efficiency figures, from turns and their tags.

Two kinds of call come here: calls transcribed by callpipe (timed turns, "audio") and
text transcripts without times (chats, calls transcribed elsewhere: "text"). Text calls
get turn-based equivalents: turns instead of seconds, words instead of talk time, and
the figures that need a clock (silences, interruptions, talk speed) are left out.

The efficiency score is 100 x the weighted mean of its components (each in [0, 1]);
a component that cannot be measured on a call is left out, not guessed. The weights
live in the config (``scoring.weights``); ``callpipe evaluate scores`` measures the
score against people and can fit the weights on a training split.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .config import ScoringConfig
from .records import ACTS, AGENT, CUSTOMER, Call, CallAnalysis, Turn, TurnTags

# How much each issue state is worth on the score's resolution component.
RESOLUTION_VALUE = {"resolved": 1.0, "solution_offered": 0.6, "open": 0.5, "escalated": 0.3, "unresolved": 0.0}

# What each component measures, for the breakdown a reviewer reads (and docs/analytics.md).
COMPONENTS = {
    "resolution": "issue state: resolved 1, solution offered 0.6, open 0.5, escalated 0.3, unresolved 0",
    "silence": "1 - non-talk time / handle time (timed calls only)",
    "talk_balance": "1 - |agent share of talk (time, or words for text) - target| / largest possible distance",
    "handle_time": "min(1, target handle time / handle time); text: min(1, target turns / turns)",
    "solution_offered": "how surely the agent offered a solution: the highest probability of the act on an agent turn",
    "confirmation": "how surely the customer confirmed the solution: the highest probability of the act on a later customer turn",
    "speed_to_solution": "1 - share of the call (turns) before the first solution offered; 0 if none was",
    "customer_effort": "min(1, target customer words / customer words): how little the customer had to write or say",
    "sentiment": "0.5 + customer sentiment change / 4 (sentiment in [-1, 1]); only when turns carry sentiment",
}

# Chinese characters (CJK unified ideographs and extension A, compatibility ideographs), deleted by str.translate.
_DROP_CJK = dict.fromkeys([*range(0x3400, 0x4DC0), *range(0x4E00, 0xA000), *range(0xF900, 0xFB00)])


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


# --- time-based figures -------------------------------------------------------------------------

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


def interruptions(turns: Sequence[Turn], min_overlap: float) -> tuple[dict[str, int], dict[str, float]]:
    """(interruptions, overtalk seconds) by the party who started talking over the other.

    A turn that starts while an earlier turn of another party is still going, and
    overlaps it by at least ``min_overlap`` seconds, is an interruption by its speaker.
    """
    count: Counter[str] = Counter()
    overtalk: Counter[str] = Counter()
    ordered = sorted(turns, key=lambda t: (t.start, t.index))
    for i, turn in enumerate(ordered):
        overlap = 0.0
        for earlier in ordered[:i]:
            if earlier.role != turn.role and earlier.start <= turn.start < earlier.end:
                overlap = max(overlap, min(earlier.end, turn.end) - turn.start)
        if overlap >= min_overlap and overlap > 0:
            count[turn.role] += 1
            overtalk[turn.role] += overlap
    return dict(count), {role: round(s, 3) for role, s in overtalk.items()}


def is_text_call(call: Call) -> bool:
    """A transcript without times: no duration and no turn with a length."""
    if call.metadata.get("modality") == "text":
        return True
    return call.duration <= 0 and bool(call.turns) and all(t.end <= t.start for t in call.turns)


def word_count(text: str) -> int:
    """Whitespace-separated words; each Chinese character counts as one word."""
    if text.isascii():  # the common case: whitespace-separated tokens
        return len(text.split())
    rest = text.translate(_DROP_CJK)  # str.translate runs in C: far faster than a regex here
    return len(text) - len(rest) + len(rest.split())


# --- act probabilities and sentiment ------------------------------------------------------------

def act_probability(tag: TurnTags, act: str) -> float:
    """How likely the turn is ``act``: its confidence when tagged so, else the rest shared by the other acts.

    Tags carry only the chosen act's confidence; a turn tagged "other" with confidence
    0.55 may still be a solution offered, and this keeps that visible. A confidence of
    0 means "not given" and is read as certain.
    """
    confidence = tag.act_confidence if tag.act_confidence > 0 else 1.0
    return confidence if tag.act == act else (1.0 - confidence) / (len(ACTS) - 1)


_SENTIMENT_LABELS = {"negative": -1.0, "neutral": 0.0, "positive": 1.0, "mixed": 0.0}


def sentiment_value(tag: TurnTags) -> float | None:
    """The turn's sentiment in [-1, 1] when the tagger gives one (a number or a label)."""
    value = getattr(tag, "sentiment", None)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return max(-1.0, min(1.0, float(value)))
    if isinstance(value, str):
        return _SENTIMENT_LABELS.get(value.lower())
    return None


def sentiment_change(turns: Sequence[Turn], tags: Sequence[TurnTags]) -> float | None:
    """Customer sentiment over the last third of their turns minus over the first third."""
    values = [v for turn, tag in zip(turns, tags) if turn.role == CUSTOMER and (v := sentiment_value(tag)) is not None]
    if len(values) < 2:
        return None
    k = max(1, len(values) // 3)
    return round(sum(values[-k:]) / k - sum(values[:k]) / k, 3)


# --- the figures ----------------------------------------------------------------------------------

def _words_by_role(turns: Sequence[Turn], turn_words: Sequence[int] | None) -> Counter[str]:
    words: Counter[str] = Counter()
    for i, turn in enumerate(turns):
        words[turn.role] += turn_words[i] if turn_words is not None else word_count(turn.text)
    return words


def service_metrics(call: Call, tags: Sequence[TurnTags], state: str, cfg: ScoringConfig, turn_words: Sequence[int] | None = None) -> dict:
    """Every per-call efficiency figure, as plain JSON-ready data (None where not measurable)."""
    turns = call.turns
    text = is_text_call(call)
    words = _words_by_role(turns, turn_words)
    total_words = sum(words.values())
    first_offer = next((i for i, t in enumerate(tags) if t.act == "solution_offered"), None)
    metrics: dict = {
        "modality": "text" if text else "audio",
        "turns": len(turns),
        "turns_by_role": dict(sorted(Counter(t.role for t in turns).items())),
        "words_by_role": dict(sorted(words.items())),
        "turns_to_first_solution": first_offer,
        "resolved": state == "resolved",
        "customer_sentiment_change": sentiment_change(turns, tags),
    }
    if text:
        metrics["talk_ratio"] = {role: round(n / total_words, 3) for role, n in sorted(words.items())} if total_words else {}
        metrics.update(handle_time=None, talk_time=None, non_talk_time=None, interruptions=None, overtalk_time=None,
                       talk_speed_wpm=None, seconds_to_first_solution=None)
        return metrics
    talk = talk_times(turns)
    total_talk = sum(talk.values())
    count, overtalk = interruptions(turns, cfg.interruption_min_overlap)
    metrics.update(
        handle_time=round(call.duration, 3),
        talk_time=talk,
        talk_ratio={role: round(s / total_talk, 3) for role, s in talk.items()} if total_talk else {},
        non_talk_time=non_talk_time(turns, round(call.duration, 3), cfg.silence_threshold),
        interruptions=count,
        overtalk_time=overtalk,
        talk_speed_wpm={role: round(60.0 * words[role] / s, 1) for role, s in talk.items() if s > 0},
        seconds_to_first_solution=round(turns[first_offer].start, 3) if first_offer is not None else None,
    )
    return metrics


def _balance(share: float, target: float) -> float:
    worst = max(target, 1.0 - target)
    return 1.0 - abs(share - target) / worst


def score_components(state: str, handle_time: float, talk: dict[str, float], silence: float, cfg: ScoringConfig,
                     *, call: Call | None = None, tags: Sequence[TurnTags] | None = None,
                     turn_words: Sequence[int] | None = None) -> dict[str, float | None]:
    """Each component in [0, 1], None where the call cannot tell.

    Without ``call``/``tags`` only the timed components are computed (resolution,
    silence, handle_time, talk_balance).
    """
    text = call is not None and is_text_call(call)
    components: dict[str, float | None] = {"resolution": RESOLUTION_VALUE[state]}
    if text:
        components["silence"] = None  # no clock, no silences
        n = len(call.turns)
        components["handle_time"] = min(1.0, cfg.target_turns / n) if n else None
    else:
        components["silence"] = 1.0 - min(1.0, silence / handle_time) if handle_time > 0 else 0.0
        components["handle_time"] = min(1.0, cfg.target_handle_time / handle_time) if handle_time > 0 else 0.0
    if text:
        talk = dict(_words_by_role(call.turns, turn_words))
    total_talk = sum(talk.values())
    if AGENT in talk and total_talk > 0:
        components["talk_balance"] = _balance(talk[AGENT] / total_talk, cfg.target_agent_talk_ratio)
    else:
        # Without known roles the balance cannot be judged; it is left out, not guessed.
        components["talk_balance"] = None
    if call is None or tags is None:
        return components
    components.update(_act_components(call, tags, cfg, turn_words))
    return components


def _act_components(call: Call, tags: Sequence[TurnTags], cfg: ScoringConfig, turn_words: Sequence[int] | None = None) -> dict[str, float | None]:
    turns = call.turns
    if not turns:
        return {"solution_offered": None, "confirmation": None, "speed_to_solution": None, "customer_effort": None, "sentiment": None}
    roles = {t.role for t in turns}
    # With unknown roles every turn may be the agent's or the customer's.
    agent_turns = [i for i, t in enumerate(turns) if t.role == AGENT or AGENT not in roles]
    customer_turns = [i for i, t in enumerate(turns) if t.role == CUSTOMER or CUSTOMER not in roles]
    offered = max((act_probability(tags[i], "solution_offered") for i in agent_turns), default=0.0)
    # A confirmation answers something: the call's first turn cannot be one.
    confirmed = max((act_probability(tags[i], "solution_confirmed") for i in customer_turns if i > 0), default=0.0)
    first_offer = next((i for i, t in enumerate(tags) if t.act == "solution_offered"), None)
    speed = 1.0 - first_offer / len(turns) if first_offer is not None else 0.0
    counts = turn_words if turn_words is not None else [word_count(t.text) for t in turns]
    customer_words = sum(counts[i] for i in customer_turns) if CUSTOMER in roles else None
    effort = None if customer_words is None else min(1.0, cfg.target_customer_words / customer_words) if customer_words else 1.0
    change = sentiment_change(turns, tags)
    return {
        "solution_offered": offered,
        "confirmation": confirmed,
        "speed_to_solution": speed,
        "customer_effort": effort,
        "sentiment": None if change is None else min(1.0, max(0.0, 0.5 + change / 4.0)),
    }


def efficiency_score(components: dict[str, float | None], weights: dict[str, float]) -> float:
    """100 x the weighted mean of the components that could be measured."""
    used = {k: w for k, w in weights.items() if components.get(k) is not None and w > 0}
    if not used:
        return 0.0
    return round(100.0 * sum(components[k] * w for k, w in used.items()) / sum(used.values()), 1)


def explain_score(components: dict[str, float | None], weights: dict[str, float]) -> tuple[str, ...]:
    """One line per component: value x weight and the points it adds to the 0-100 score."""
    total = sum(w for k, w in weights.items() if w > 0 and components.get(k) is not None)
    lines = []
    for name, value in components.items():
        weight = weights.get(name, 0.0)
        if value is None:
            lines.append(f"{name}: not measurable on this call (left out)")
        elif weight <= 0:
            lines.append(f"{name}: {value:.2f} (weight 0, not counted)")
        else:
            lines.append(f"{name}: {value:.2f} x weight {weight:g} -> {100.0 * value * weight / total:.1f} points")
    return tuple(lines)


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
    text = is_text_call(call)
    talk = {} if text else talk_times(call.turns)
    silence = 0.0 if text else non_talk_time(call.turns, handle_time, cfg.silence_threshold)
    state = issue_state(tags)
    turn_words = [word_count(t.text) for t in call.turns]
    components = score_components(state, handle_time, talk, silence, cfg, call=call, tags=tags, turn_words=turn_words)
    rounded = {k: (round(v, 3) if v is not None else None) for k, v in components.items()}
    return CallAnalysis(
        issue_state=state,
        intent=call_intent(call.turns, tags),
        handle_time=handle_time,
        talk_time=talk,
        non_talk_time=silence,
        turn_count=len(call.turns),
        efficiency_score=efficiency_score(rounded, cfg.weights),
        score_breakdown=rounded,
        flags=call_flags(state, len(call.turns), silence, handle_time, cfg),
        modality="text" if text else "audio",
        metrics=service_metrics(call, tags, state, cfg, turn_words),
        score_explanation=explain_score(rounded, cfg.weights),
    )


# --- across calls -----------------------------------------------------------------------------------

def repeat_contacts(rows: Sequence[dict], days: float) -> list[tuple[str, str, str, float]]:
    """(call_id, customer_id, next_call_id, days between) for each call the same customer called again
    about within ``days``: that call did not resolve the customer's issue.

    ``rows``: per call {call_id, metadata (customer_id, start_time), processed_at}.
    """
    from .scorecards import call_time

    by_customer: dict[str, list[tuple]] = {}
    for r in rows:
        customer = (r.get("metadata") or {}).get("customer_id")
        if customer not in (None, ""):
            by_customer.setdefault(str(customer), []).append((call_time(r), r["call_id"]))
    out = []
    for customer, calls in by_customer.items():
        calls.sort()
        for (t0, c0), (t1, c1) in zip(calls, calls[1:]):
            gap = (t1 - t0).total_seconds() / 86400.0
            if gap <= days:
                out.append((c0, customer, c1, round(gap, 3)))
    return out
