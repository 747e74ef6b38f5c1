"""Calls as event sequences, and the event n-grams that recur across calls."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .records import CUSTOMER, Event, Turn, TurnTags


def call_events(turns: Sequence[Turn], tags: Sequence[TurnTags]) -> tuple[Event, ...]:
    """One event per turn: who, which act, and for customer turns the intent."""
    return tuple(
        Event(
            index=turn.index,
            time=turn.start,
            role=turn.role,
            act=tag.act,
            intent=tag.intent if turn.role == CUSTOMER and tag.intent not in (None, "other") else None,
        )
        for turn, tag in zip(turns, tags)
    )


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
