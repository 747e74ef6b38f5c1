from itertools import combinations

import pytest

from pipeline.config import Config
from pipeline.records import Turn, TurnTags
from pipeline.sequences import BETWEEN_TURNS_BASE, CallOutcome, call_events, event_order, mine_patterns, prefixspan


def brute_force(sequences, weights, min_count, max_length):
    """Every ordered subsequence (gaps allowed) and its weighted support, the slow way."""
    found = {}
    for sid, seq in enumerate(sequences):
        subs = {tuple(seq[i] for i in idx) for n in range(1, max_length + 1) for idx in combinations(range(len(seq)), n)}
        for s in subs:
            found[s] = found.get(s, 0) + weights[sid]
    return {p: c for p, c in found.items() if c >= min_count}


@pytest.mark.parametrize("min_count", [1, 2, 3])
def test_prefixspan_finds_exactly_the_frequent_subsequences(min_count):
    sequences = [(1, 2, 3, 1), (1, 3, 2), (2, 1, 1, 3), (3, 3)]
    weights = [1, 2, 1, 1]
    mined = {p: sum(weights[s] for s in sids) for p, sids in prefixspan(sequences, weights, min_count, 3)}
    assert mined == brute_force(sequences, weights, min_count, 3)


def test_patterns_carry_support_and_lift_on_resolution_and_score():
    calls = [
        CallOutcome(("a", "b", "c"), True, 80.0),
        CallOutcome(("a", "x", "b"), True, 60.0),
        CallOutcome(("b", "a"), False, 20.0),
        CallOutcome(("c",), False, 40.0),
    ]
    patterns = {p.events: p for p in mine_patterns(calls, min_support=0.5, max_length=3, top_k=10)}
    ab = patterns[("a", "b")]
    assert ab.support == 2 and ab.support_share == 0.5
    assert ab.resolution_with == 1.0 and ab.resolution_without == 0.0 and ab.resolution_lift is None  # nothing to divide by
    assert ab.score_with == 70.0 and ab.score_without == 30.0 and ab.score_lift == pytest.approx(70 / 30, abs=1e-3)
    assert all(len(p) >= 2 for p in patterns)  # single events are not sequences
    assert ("b", "a") not in patterns  # only one call has it: below 50 %


def test_identical_sequences_are_mined_once_with_their_count():
    calls = [CallOutcome(("a", "b"), i % 2 == 0, 50.0) for i in range(1000)] + [CallOutcome(("b", "a"), False, 10.0)]
    (p,) = [p for p in mine_patterns(calls, 0.5, 2, 10)]
    assert p.events == ("a", "b") and p.support == 1000 and p.resolution_with == 0.5


def test_events_add_holds_interruptions_sentiment_and_entities_in_order():
    turns = (
        Turn(0, "customer", 0.0, 5.0, "my bill is wrong"),
        Turn(1, "agent", 4.0, 8.0, "let me check"),  # starts 1 s before the customer stops
        Turn(2, "agent", 30.0, 32.0, "found it"),  # after a 22 s silence
        Turn(3, "customer", 33.0, 35.0, "great"),
    )

    tags = [TurnTags("problem_stated"), TurnTags("other"), TurnTags("solution_offered"), TurnTags("solution_confirmed")]
    plain = call_events(turns, tags)
    assert [e.label for e in plain] == ["customer:problem_stated", "agent:other", "agent:solution_offered", "customer:solution_confirmed"]
    full = call_events(turns, tags, cfg=Config())
    labels = [e.label for e in full]
    assert labels == ["customer:problem_stated", "agent:other", "agent:interruption", "agent:hold", "agent:solution_offered",
                      "customer:solution_confirmed"]
    extra = [e for e in full if e.kind != "turn"]
    assert all(e.index >= BETWEEN_TURNS_BASE for e in extra)
    assert sorted(full, key=lambda e: event_order(e.index)) == list(full)


def test_sentiment_shifts_and_entities_become_events():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class RichTags(TurnTags):
        sentiment: float | None = None
        entities: tuple = ()

    turns = tuple(Turn(i, r, 0.0, 0.0, "x") for i, r in enumerate(["customer", "agent", "customer"]))
    tags = [RichTags("problem_stated", sentiment=-0.9, entities=({"type": "ACCOUNT"},)), RichTags("other"),
            RichTags("solution_confirmed", sentiment=0.6)]
    labels = [e.label for e in call_events(turns, tags, cfg=Config())]
    assert labels == ["customer:problem_stated", "customer:entity_ACCOUNT", "agent:other", "customer:solution_confirmed",
                      "customer:sentiment_up"]
