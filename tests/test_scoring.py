import pytest

from pipeline.config import ScoringConfig
from pipeline.records import Call, Turn, TurnTags, Word
from pipeline.scoring import analyze_call, efficiency_score, issue_state, non_talk_time, talk_times
from pipeline.sequences import call_events, frequent_ngrams


def tags(*acts):
    return [TurnTags(act=a) for a in acts]


@pytest.mark.parametrize(
    "acts, state",
    [
        (("problem_stated", "solution_offered", "solution_confirmed"), "resolved"),
        (("problem_stated", "solution_offered", "other"), "solution_offered"),
        (("problem_stated", "other"), "unresolved"),
        (("other", "other"), "open"),
        (("solution_confirmed", "other"), "open"),  # a thank-you with nothing before it resolves nothing
    ],
)
def test_issue_state_from_acts(acts, state):
    assert issue_state(tags(*acts)) == state


def _call():
    turns = (
        Turn(0, "agent", 0.0, 10.0, "hello", (Word(0.0, 4.0, "a", 1), Word(6.0, 10.0, "b", 1))),
        Turn(1, "customer", 10.0, 20.0, "problem"),
        Turn(2, "agent", 30.0, 40.0, "fix"),
    )
    return Call("c", "c.wav", 50.0, 2, "en", turns)


def test_talk_and_silence_use_word_times_and_the_threshold():
    call = _call()
    assert talk_times(call.turns) == {"agent": 18.0, "customer": 10.0}
    # Gaps: 4-6 (2 s, not above threshold 2), 20-30 (10 s), 40-50 (10 s).
    assert non_talk_time(call.turns, 50.0, 2.0) == 20.0
    assert non_talk_time(call.turns, 50.0, 1.0) == 22.0


def test_score_is_the_weighted_mean_of_its_components():
    cfg = ScoringConfig()
    analysis = analyze_call(_call(), tags("other", "problem_stated", "solution_offered"), cfg)
    b = analysis.score_breakdown
    assert analysis.issue_state == "solution_offered" and b["resolution"] == 0.6
    assert b["silence"] == pytest.approx(1 - 20 / 50)
    assert b["handle_time"] == 1.0
    assert b["talk_balance"] == pytest.approx(1 - abs(18 / 28 - 0.5) / 0.5, abs=1e-3)
    expected = 100 * sum(b[k] * w for k, w in cfg.weights.items()) / sum(cfg.weights.values())
    assert analysis.efficiency_score == pytest.approx(expected, abs=0.05)


def test_unknown_roles_leave_talk_balance_out_of_the_score():
    assert efficiency_score({"resolution": 1.0, "talk_balance": None}, {"resolution": 1.0, "talk_balance": 5.0}) == 100.0


def test_events_and_ngrams_with_resolution_rate():
    call = _call()
    t = [TurnTags("other"), TurnTags("problem_stated", intent="refund"), TurnTags("solution_offered")]
    events = call_events(call.turns, t)
    assert [e.label for e in events] == ["agent:other", "customer:problem_stated:refund", "agent:solution_offered"]
    sequences = [(["a", "b", "c"], True), (["a", "b"], False), (["b", "c", "b", "c"], True)]
    patterns = {p.events: p for p in frequent_ngrams(sequences, 2, 3, 10)}
    assert patterns[("b", "c")].support == 2 and patterns[("b", "c")].occurrences == 3
    assert patterns[("b", "c")].resolution_rate == 1.0
    assert patterns[("a", "b")].support == 2 and patterns[("a", "b")].resolution_rate == 0.5
