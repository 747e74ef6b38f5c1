"""Calls as event sequences; the event patterns that recur across calls and how they relate to outcomes.

An event is who did what, when: one per turn (role, act and the customer's intent),
plus moments between turns when the call's data shows them (holds, interruptions,
customer sentiment shifts, entity types mentioned).

Two kinds of pattern are mined across calls:

- contiguous n-grams (``frequent_ngrams``), the quick view;
- sequential patterns (``prefixspan``): events in order with gaps allowed, each with its
  support and its lift on outcomes, i.e. the resolution rate and mean efficiency score of
  the calls that contain the pattern versus those that do not.

PrefixSpan is implemented here rather than taken from a package: the one maintained
package on PyPI for it has had no release since 2018, the algorithm is short, and
mining identical sequences once with a weight (calls repeat the same act sequences
very often) is what makes 100,000 calls take seconds.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .records import CUSTOMER, Event, Turn, TurnTags
from .scoring import sentiment_value

# Events between turns are numbered from here: 100000 + 10 x (turn they follow) + k, so
# that turn events keep event_index == turn index and every event sorts into place.
BETWEEN_TURNS_BASE = 100_000
MAX_BETWEEN_EVENTS = 9


def event_order(event_index: int) -> int:
    """A sort key that puts each event between the turns where it happened."""
    if event_index >= BETWEEN_TURNS_BASE:
        return event_index - BETWEEN_TURNS_BASE
    return 10 * event_index


def _entity_types(tag: TurnTags) -> list[str]:
    """Entity types on a turn's tags, whatever shape the tagger gives them in."""
    found = []
    for e in getattr(tag, "entities", None) or ():
        if isinstance(e, dict):
            kind = e.get("type") or e.get("label")
        elif isinstance(e, (tuple, list)) and len(e) >= 2:
            kind = e[1]
        else:
            kind = getattr(e, "type", None) or getattr(e, "label", None) or (e if isinstance(e, str) else None)
        if kind and str(kind) not in found:
            found.append(str(kind))
    return found


def call_events(turns: Sequence[Turn], tags: Sequence[TurnTags], cfg=None) -> tuple[Event, ...]:
    """One event per turn: who, which act, and for customer turns the intent.

    With ``cfg`` (a Config), also the moments between turns: a hold (silence longer than
    ``sequences.hold_threshold``, by the party who spoke last), an interruption (by the
    party who started over the other), a customer sentiment shift and the entity types
    a turn mentions.
    """
    events = [
        Event(
            index=turn.index,
            time=turn.start,
            role=turn.role,
            act=tag.act,
            intent=tag.intent if turn.role == CUSTOMER and tag.intent not in (None, "other") else None,
        )
        for turn, tag in zip(turns, tags)
    ]
    if cfg is None:
        return tuple(events)
    return tuple(sorted(events + _between_turn_events(turns, tags, cfg), key=lambda e: event_order(e.index)))


def _between_turn_events(turns: Sequence[Turn], tags: Sequence[TurnTags], cfg) -> list[Event]:
    extra: dict[int, list[tuple[float, str, str]]] = defaultdict(list)  # turn position -> (time, role, what)
    timed = any(t.end > t.start for t in turns)
    last_end, last_role = None, None
    prev_sentiment = None
    for i, (turn, tag) in enumerate(zip(turns, tags)):
        if timed and last_end is not None:
            if turn.start - last_end > cfg.sequences.hold_threshold:
                extra[i - 1].append((last_end, last_role, "hold"))
            elif last_role not in (None, turn.role) and last_end - turn.start >= max(cfg.scoring.interruption_min_overlap, 1e-9):
                extra[i].append((turn.start, turn.role, "interruption"))
        if timed:
            if last_end is None or turn.end >= last_end:
                last_end, last_role = turn.end, turn.role
        if turn.role == CUSTOMER:
            value = sentiment_value(tag)
            if value is not None and prev_sentiment is not None and abs(value - prev_sentiment) >= cfg.sequences.sentiment_shift:
                extra[i].append((turn.start, turn.role, "sentiment_up" if value > prev_sentiment else "sentiment_down"))
            prev_sentiment = value if value is not None else prev_sentiment
        for kind in _entity_types(tag):
            extra[i].append((turn.start, turn.role, f"entity_{kind}"))
    out = []
    for position, items in extra.items():
        after = turns[max(0, position)].index
        for k, (time, role, what) in enumerate(items[:MAX_BETWEEN_EVENTS], start=1):
            kind = what if not what.startswith("entity_") else "entity"
            out.append(Event(index=BETWEEN_TURNS_BASE + 10 * after + k, time=time, role=role, act=what, kind=kind))
    return out


# --- contiguous n-grams -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Pattern:
    events: tuple[str, ...]
    support: int  # calls that contain the n-gram at least once
    occurrences: int
    resolution_rate: float  # share of the supporting calls that were resolved


def frequent_ngrams(
    calls: Iterable[tuple[Sequence[str], bool]], min_n: int, max_n: int, top_k: int
) -> list[Pattern]:
    """Count contiguous event n-grams over (labels, resolved) pairs, most supported first."""
    support: Counter[tuple[str, ...]] = Counter()
    occurrences: Counter[tuple[str, ...]] = Counter()
    resolved: Counter[tuple[str, ...]] = Counter()
    for labels, is_resolved in calls:
        seen = set()
        for n in range(min_n, max_n + 1):
            for i in range(len(labels) - n + 1):
                gram = tuple(labels[i : i + n])
                occurrences[gram] += 1
                seen.add(gram)
        for gram in seen:
            support[gram] += 1
            resolved[gram] += is_resolved
    ranked = sorted(support, key=lambda g: (-support[g], -len(g), g))[:top_k]
    return [Pattern(g, support[g], occurrences[g], round(resolved[g] / support[g], 3)) for g in ranked]


# --- sequential patterns (PrefixSpan) ---------------------------------------------------------------

def prefixspan(sequences: Sequence[Sequence[int]], weights: Sequence[int], min_count: int, max_length: int):
    """Every pattern of at most ``max_length`` items contained (in order, gaps allowed) in
    sequences whose total weight is at least ``min_count``.

    Yields (pattern, ids of the sequences that contain it). Pei et al.'s PrefixSpan with
    pseudo-projection: a projected database is a list of (sequence id, position after the
    prefix's earliest match), and each item counts once per sequence.
    """
    def grow(prefix: tuple[int, ...], projected: list[tuple[int, int]]):
        counts: dict[int, int] = defaultdict(int)
        for sid, pos in projected:
            w = weights[sid]
            for item in set(sequences[sid][pos:]):
                counts[item] += w
        frequent = {item for item, c in counts.items() if c >= min_count}
        if not frequent:
            return
        nexts: dict[int, list[tuple[int, int]]] = {item: [] for item in frequent}
        for sid, pos in projected:
            seq = sequences[sid]
            seen = set()
            for i in range(pos, len(seq)):
                item = seq[i]
                if item in frequent and item not in seen:
                    seen.add(item)
                    nexts[item].append((sid, i + 1))
        for item in sorted(frequent):
            pattern = prefix + (item,)
            yield pattern, [sid for sid, _ in nexts[item]]
            if len(pattern) < max_length:
                yield from grow(pattern, nexts[item])

    yield from grow((), [(sid, 0) for sid in range(len(sequences))])


@dataclass(frozen=True)
class SequencePattern:
    events: tuple[str, ...]
    support: int  # calls that contain the pattern (in order, gaps allowed)
    support_share: float
    resolution_with: float  # resolution rate of the calls with the pattern
    resolution_without: float | None  # ... and of the calls without it (None: every call has it)
    resolution_lift: float | None  # with / without
    score_with: float  # mean efficiency score of the calls with the pattern
    score_without: float | None
    score_lift: float | None  # with / without


@dataclass(frozen=True)
class CallOutcome:
    labels: tuple[str, ...]
    resolved: bool
    score: float


def _ratio(a: float, b: float | None) -> float | None:
    return round(a / b, 3) if b else None


def mine_patterns(calls: Iterable[CallOutcome], min_support: float, max_length: int, top_k: int, min_length: int = 2) -> list[SequencePattern]:
    """Sequential patterns in at least ``min_support`` of the calls, with their lift on outcomes.

    Identical label sequences are mined once with their count as weight; their
    outcomes (resolved calls, score total) are summed per distinct sequence.
    """
    groups: dict[tuple[str, ...], list[float]] = {}  # labels -> [calls, resolved, score total]
    for c in calls:
        g = groups.setdefault(tuple(c.labels), [0, 0, 0.0])
        g[0] += 1
        g[1] += bool(c.resolved)
        g[2] += c.score
    n_calls = sum(int(g[0]) for g in groups.values())
    if not n_calls:
        return []
    vocab = {label: i for i, label in enumerate(sorted({l for labels in groups for l in labels}))}
    names = sorted(vocab, key=vocab.get)
    keys = list(groups)
    sequences = [tuple(vocab[l] for l in labels) for labels in keys]
    weights = [int(groups[k][0]) for k in keys]
    resolved = [int(groups[k][1]) for k in keys]
    scores = [groups[k][2] for k in keys]
    total_resolved, total_score = sum(resolved), sum(scores)
    min_count = max(1, math.ceil(min_support * n_calls))
    found = []
    for pattern, sids in prefixspan(sequences, weights, min_count, max_length):
        if len(pattern) < min_length:
            continue
        support = sum(weights[s] for s in sids)
        res = sum(resolved[s] for s in sids)
        score = sum(scores[s] for s in sids)
        rest = n_calls - support
        res_with, score_with = res / support, score / support
        res_without = (total_resolved - res) / rest if rest else None
        score_without = (total_score - score) / rest if rest else None
        found.append(SequencePattern(
            events=tuple(names[i] for i in pattern), support=support, support_share=round(support / n_calls, 4),
            resolution_with=round(res_with, 4), resolution_without=None if res_without is None else round(res_without, 4),
            resolution_lift=_ratio(res_with, res_without), score_with=round(score_with, 2),
            score_without=None if score_without is None else round(score_without, 2), score_lift=_ratio(score_with, score_without),
        ))
    found.sort(key=lambda p: (-p.support, -len(p.events), p.events))
    return found[:top_k]


def mine_store(store, cfg) -> list[SequencePattern]:
    """Sequential patterns over every call in a store (``cfg``: the Config)."""
    sq = cfg.sequences
    return mine_patterns(store.call_outcomes(), sq.min_support, sq.max_length, sq.pattern_top_k)
