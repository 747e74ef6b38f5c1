import pytest

from pipeline.config import Config, DriversConfig, ScorecardsConfig
from pipeline.drivers import call_drivers, topic_count
from pipeline.scorecards import build_scorecards, contains, period_of, call_time
from pipeline.scoring import repeat_contacts


def row(call_id, agent, score, resolved, start, customer=None, handle=100.0):
    meta = {"start_time": start}
    if agent:
        meta["agent_id"] = agent
    if customer:
        meta["customer_id"] = customer
    return {"call_id": call_id, "metadata": meta, "processed_at": 0.0, "efficiency_score": score, "resolved": resolved,
            "handle_time": handle, "turn_count": 4, "modality": "audio", "repeat_contact": False}


def test_scorecards_per_agent_and_period_with_pattern_differences():
    rows = [
        row("a1", "ann", 80.0, True, "2024-01-05T10:00"), row("a2", "ann", 60.0, True, "2024-02-01T10:00"),
        row("a3", "ann", 70.0, False, "2024-02-03T10:00"),
        row("b1", "bob", 30.0, False, "2024-01-07T10:00"), row("b2", "bob", 50.0, True, "2024-01-09T10:00"),
        row("u1", None, 40.0, False, "2024-01-10T10:00"),
    ]
    labels = {c: ("customer:problem_stated", "agent:solution_offered") for c in ("a1", "a2", "a3")}
    labels.update({c: ("customer:problem_stated", "agent:other") for c in ("b1", "b2", "u1")})
    cards = build_scorecards(rows, labels, [("customer:problem_stated", "agent:solution_offered")], ScorecardsConfig(min_pattern_calls=2))
    assert set(cards) == {"ann", "bob", "unknown"}
    ann = cards["ann"]
    assert ann["calls"] == 3 and ann["mean_score"] == 70.0 and ann["score_std"] == pytest.approx(8.165, abs=1e-3)
    assert ann["resolution_rate"] == pytest.approx(2 / 3, abs=1e-3) and ann["avg_handle_time"] == 100.0
    assert [p["period"] for p in ann["periods"]] == ["2024-01", "2024-02"]
    (diff,) = ann["patterns"]
    assert diff["agent_share"] == 1.0 and diff["team_share"] == 0.0 and diff["difference"] == 1.0
    assert cards["bob"]["patterns"] == []  # bob's calls lack the pattern: below min_pattern_calls


def test_periods_and_subsequence_containment():
    t = call_time({"metadata": {"start_time": "2024-05-17T09:30"}})
    assert [period_of(t, p) for p in ("day", "week", "month", "quarter", "all")] == ["2024-05-17", "2024-W20", "2024-05", "2024-Q2", "all"]
    assert contains(("a", "x", "b", "c"), ("a", "b")) and not contains(("b", "a"), ("a", "b"))


def test_repeat_contact_within_the_window_marks_the_earlier_call():
    rows = [row("1", None, 0, True, "2024-01-01T00:00", "cust"), row("2", None, 0, True, "2024-01-03T00:00", "cust"),
            row("3", None, 0, True, "2024-02-01T00:00", "cust"), row("4", None, 0, True, "2024-01-02T00:00")]
    assert repeat_contacts(rows, 7.0) == [("1", "cust", "2", 2.0)]


def test_drivers_cluster_problem_statements_per_language():
    router = ["my internet router keeps dropping the wifi connection", "the wifi router is down and internet dropping",
              "router wifi internet connection lost again", "internet connection down, router lights blinking wifi"]
    bills = ["my bill charged twice this month refund", "refund the double charge on my bill",
             "wrong charge on my monthly bill, want refund", "bill shows extra charge, please refund"]
    zh = ["我的宽带断了", "宽带又断了网速很慢", "话费扣错了请退款", "话费多扣了要退款"]
    rows = [(f"e{i}", "en", [("customer", "problem_stated", t), ("agent", "other", "ok")]) for i, t in enumerate(router + bills)]
    rows += [(f"z{i}", "zh", [("customer", "other", t)]) for i, t in enumerate(zh)]
    resolved = {f"e{i}": i >= 4 for i in range(8)}
    drivers = call_drivers(rows, resolved, DriversConfig(topics=2, keywords=4, min_statements=4))
    en = [d for d in drivers if d["language"] == "en"]
    assert sorted(d["volume"] for d in en) == [4, 4]
    bill = next(d for d in en if "bill" in d["keywords"] or "refund" in d["keywords"])
    assert bill["resolution_rate"] == 1.0 and set(bill["call_ids"]) == {"e4", "e5", "e6", "e7"}
    zh_topics = [d for d in drivers if d["language"] == "zh"]
    assert sorted(d["volume"] for d in zh_topics) == [2, 2]
    assert any("宽带" in d["keywords"] for d in zh_topics) and any("话费" in d["keywords"] for d in zh_topics)
    assert topic_count(3000, 0) == 30 and topic_count(40, 0) == 2



def test_repeated_statements_get_no_more_topics_than_there_are_distinct_ones():
    import warnings

    from pipeline.drivers import cluster_statements

    texts = ["my router keeps dropping the wifi", "refund the double charge on my bill", "my router keeps dropping the wifi"] * 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # k-means warns when asked for more clusters than distinct points
        labels, keywords = cluster_statements(texts, "en", DriversConfig(topics=30, keywords=3))
    assert len(keywords) == 2 and len(set(labels)) == 2
    assert labels[0] == labels[2] != labels[1]

def test_refresh_fills_every_cross_call_table(tmp_path):
    from pipeline.crosscall import refresh
    from pipeline.records import Call, Turn, TurnTags
    from pipeline.scoring import analyze_call
    from pipeline.sequences import call_events
    from pipeline.store import Store
    from pipeline.scorecards import agent_scorecards

    cfg = Config(drivers=DriversConfig(min_statements=2, topics=2))
    with Store(tmp_path) as store:
        run = store.start_run({}, {})
        for i in range(6):
            turns = (Turn(0, "customer", 0.0, 0.0, ["router down", "bill wrong"][i % 2]), Turn(1, "agent", 0.0, 0.0, "try this"),
                     Turn(2, "customer", 0.0, 0.0, "thanks"))
            call = Call(f"c{i}", "x", 0.0, 0, "en", turns, metadata={"agent_id": "a" if i < 3 else "b", "customer_id": "k" if i < 2 else f"k{i}",
                                                                       "start_time": f"2024-01-0{i + 1}T00:00"})
            tags = [TurnTags("problem_stated"), TurnTags("solution_offered"), TurnTags("solution_confirmed" if i % 2 else "other")]
            store.save_call(run, call, tags, analyze_call(call, tags, cfg.scoring), call_events(turns, tags, cfg=cfg))
        took = refresh(store, cfg)
        assert set(took) == {"repeat_contacts", "patterns", "suggest_index", "drivers", "scorecards"}
        assert store.repeat_contacts() == {"c0": {"customer_id": "k", "next_call_id": "c1", "days": 1.0}}
        assert store.sequence_patterns() and store.drivers()
        assert set(agent_scorecards(store)) == {"a", "b"}
        # c1 was resolved and c0 came back: c0 does not count as resolved.
        assert {r["call_id"]: r["resolved"] for r in store.outcome_rows()}["c0"] is False
