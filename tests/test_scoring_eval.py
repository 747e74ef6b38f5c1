import json

import numpy as np
import pytest

from pipeline.config import ScoringConfig
from pipeline.evaluation_analytics import TEXT_COMPONENTS, evaluate_scores, fit_weights, weighted_scores
from pipeline.records import Call, Turn, TurnTags, Word
from pipeline.scoring import act_probability, analyze_call, interruptions, is_text_call, word_count


def text_call(*turns):
    return Call("t", "t.json", 0.0, 0, "en", tuple(Turn(i, r, 0.0, 0.0, x) for i, (r, x) in enumerate(turns)), metadata={"modality": "text"})


def test_text_calls_get_turn_based_equivalents():
    call = text_call(("customer", "my router is down"), ("agent", "please restart it now"), ("customer", "thanks"))
    tags = [TurnTags("problem_stated", 0.8, sentiment=-0.5), TurnTags("solution_offered", 0.7),
            TurnTags("solution_confirmed", 0.9, sentiment=0.5)]
    a = analyze_call(call, tags, ScoringConfig(target_turns=2, target_customer_words=10))
    b = a.score_breakdown
    assert a.modality == "text" and is_text_call(call)
    assert b["silence"] is None and b["handle_time"] == pytest.approx(2 / 3, abs=1e-3)
    assert b["talk_balance"] == pytest.approx(1 - abs(4 / 9 - 0.5) / 0.5, abs=1e-3)  # by words
    assert b["solution_offered"] == 0.7 and b["confirmation"] == 0.9
    assert b["speed_to_solution"] == pytest.approx(1 - 1 / 3, abs=1e-3) and b["customer_effort"] == 1.0
    assert b["sentiment"] == 0.75  # the customer went from -0.5 to 0.5
    m = a.metrics
    assert m["customer_sentiment_change"] == 1.0
    assert m["turns_to_first_solution"] == 1 and m["resolved"] and m["handle_time"] is None and m["talk_ratio"]["agent"] == pytest.approx(4 / 9, abs=1e-3)
    assert any(line.startswith("solution_offered: 0.70") for line in a.score_explanation)


def test_timed_calls_measure_interruptions_speed_and_time_to_solution():
    turns = (
        Turn(0, "customer", 0.0, 6.0, "one two three four five six", (Word(0.0, 6.0, "x", 1.0),)),
        Turn(1, "agent", 5.0, 8.0, "try a restart"),  # 1 s over the customer
        Turn(2, "customer", 8.2, 9.0, "ok"),
    )
    call = Call("c", "c.wav", 10.0, 2, "en", turns)
    a = analyze_call(call, [TurnTags("problem_stated"), TurnTags("solution_offered"), TurnTags("other")], ScoringConfig())
    m = a.metrics
    assert m["interruptions"] == {"agent": 1} and m["overtalk_time"] == {"agent": 1.0}
    assert m["talk_speed_wpm"]["customer"] == pytest.approx(60 * 7 / 6.8, abs=0.1)
    assert m["seconds_to_first_solution"] == 5.0 and m["turns_to_first_solution"] == 1
    assert interruptions(turns, 2.0) == ({}, {})


def test_act_probability_and_word_count():
    assert act_probability(TurnTags("other", 0.7), "solution_offered") == pytest.approx(0.1)
    assert act_probability(TurnTags("solution_offered"), "solution_offered") == 1.0  # no confidence given: certain
    assert word_count("我的宽带 is down") == 6


def test_fit_weights_finds_the_informative_components():
    rng = np.random.default_rng(0)
    X = rng.random((300, len(TEXT_COMPONENTS)))
    target = 2 * X[:, TEXT_COMPONENTS.index("solution_offered")] + X[:, TEXT_COMPONENTS.index("confirmation")]
    weights = fit_weights(X, target)
    assert set(weights) <= {"solution_offered", "confirmation"} and weights["solution_offered"] > weights.get("confirmation", 0)
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-3)
    X[0, 0] = np.nan  # an unmeasured component is left out of that call's mean
    assert weighted_scores(X[:1], {"resolution": 1.0, "solution_offered": 1.0})[0] == pytest.approx(100 * X[0, TEXT_COMPONENTS.index("solution_offered")])


def synthetic_stc3(n, seed):
    """Dialogues whose quality follows whether the helpdesk offered a fix and the customer confirmed it."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        offer, confirm = rng.random() < 0.5, rng.random() < 0.5
        turns = [{"sender": "customer", "utterances": [f"my {rng.choice(['router', 'phone', 'tv'])} is broken"]},
                 {"sender": "helpdesk", "utterances": ["please restart the device" if offer else "hello, we will check"]},
                 {"sender": "customer", "utterances": ["thanks it works now" if confirm else "still waiting"]}]
        e = int(offer) + int(confirm) - 1
        nug = ["CNUG0", "HNUG*" if offer else "HNUG", "CNUG*" if confirm else "CNUG"]
        items.append({"id": f"{seed}{i}", "turns": turns,
                      "annotations": [{"quality": {"A": e, "S": e, "E": e + (k % 2)}, "nugget": nug} for k in range(3)]})
    return items


@pytest.fixture(autouse=True)
def quick_acts_model(monkeypatch):
    import pipeline.evaluation_analytics as ev

    monkeypatch.setattr(ev, "ACTS_PARAMS", {"cv": 2, "tune_decision": False})
    monkeypatch.setattr(ev, "CACHE_DIR", None)


@pytest.fixture(scope="module")
def stc3_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("stc3")
    (d / "train.json").write_text(json.dumps(synthetic_stc3(40, 1)))
    (d / "test.json").write_text(json.dumps(synthetic_stc3(16, 2)))
    return d / "train.json", d / "test.json"


def test_evaluate_scores_on_held_out_dialogues(stc3_files):
    train, test = stc3_files
    metrics = evaluate_scores(train=train, test=test, lang="en", out=None)
    assert set(metrics) >= {"spearman_E", "spearman_A", "spearman_S"}
    assert metrics["spearman_E"] > 0.6 and metrics["test_dialogues"] == 16
    assert set(metrics["weights"]) <= set(TEXT_COMPONENTS)


def test_evaluate_suggest_on_held_out_dialogues(stc3_files, capsys):
    from pipeline.cli import main

    train, test = stc3_files
    assert main(["evaluate", "suggest", "--train", str(train), "--test", str(test), "--set", "suggest.min_support=1"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("hits_at_1", "hits_at_3", "baseline_hits_at_1", "baseline_hits_at_3", "response_similarity", "baseline_response_similarity"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["hits_at_3"] == 1.0 and metrics["cases"] == 16
