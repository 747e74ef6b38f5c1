import pytest

from pipeline.config import Config, SuggestConfig
from pipeline.records import Call, Turn, TurnTags
from pipeline.scoring import analyze_call
from pipeline.sequences import call_events
from pipeline.store import Store
from pipeline.suggest import SuggestIndex, moments, normalize_response, save_index, suggest, suggestions_for_call, suggest_for_call_turn

CFG = SuggestConfig(k=3, context=2, min_support=2, prior=2.0)


def history():
    """Router problems: offering a restart resolves, asking for the account number does not."""
    calls = []
    for i in range(6):
        offer = i % 3 != 0
        reply = f"Please restart the router, ticket {i}." if offer else "What is your account number?"
        acts = ["problem_stated", "solution_offered" if offer else "other", "solution_confirmed" if offer else "other"]
        texts = ["My internet router is down", reply, "Thanks, it works" if offer else "12345"]
        calls.append((f"c{i}", acts, texts))
    calls.append(("bill", ["problem_stated", "other", "other"], ["My bill is too high", "Let me check the bill.", "ok"]))
    return calls


def index_from(calls, cfg=CFG):
    index = SuggestIndex(cfg)
    for call_id, acts, texts in calls:
        roles = ["customer", "agent", "customer"]
        labels = [f"{r}:{a}" for r, a in zip(roles, acts)]
        for m in moments(call_id, labels, roles, acts, texts, acts[-1] == "solution_confirmed", cfg.context):
            index.add(m)
    return index


def test_acts_are_ranked_by_smoothed_resolution_with_support():
    result = suggest(index_from(history()), ["customer:problem_stated"], "router down again", 3, CFG)
    assert result["context"] == ["customer:problem_stated"] and result["moments"] == 7
    top, second = result["acts"]
    assert top["act"] == "solution_offered" and top["support"] == 4
    base = 4 / 7
    assert top["resolution_probability"] == pytest.approx((4 + 2 * base) / (4 + 2), abs=1e-4)
    assert second["act"] == "other" and second["support"] == 3 and second["resolution_probability"] < top["resolution_probability"]


def test_responses_come_from_resolved_calls_with_numbers_merged():
    result = suggest(index_from(history()), ["customer:problem_stated"], "my router is down", 3, CFG)
    texts = [r["text"] for r in result["responses"]]
    assert texts == ["Please restart the router, ticket 1."]  # one response: ticket numbers do not make it new
    (r,) = result["responses"]
    assert r["support"] == 4 and r["resolved"] == 4 and r["act"] == "solution_offered" and r["similarity"] > 0.5
    assert normalize_response("Ticket 12  OK") == normalize_response("ticket 7 ok")


def test_context_backs_off_when_the_long_one_is_unseen():
    result = suggest(index_from(history()), ["agent:other", "customer:problem_stated"], "router", 3, CFG)
    assert result["context"] == ["customer:problem_stated"]
    nothing = suggest(index_from(history()), ["customer:never_seen"], "x", 3, CFG)
    assert nothing["context"] == [] and nothing["moments"] == 7


def _store_with_history(tmp_path):
    store = Store(tmp_path)
    run = store.start_run({}, {})
    cfg = Config()
    for call_id, acts, texts in history():
        turns = tuple(Turn(i, r, 0.0, 0.0, t) for i, (r, t) in enumerate(zip(["customer", "agent", "customer"], texts)))
        call = Call(call_id, "x.json", 0.0, 0, "en", turns, metadata={"modality": "text"})
        tags = [TurnTags(a, 0.9) for a in acts]
        store.save_call(run, call, tags, analyze_call(call, tags, cfg.scoring), call_events(turns, tags))
    save_index(store, CFG)
    return store


def test_suggestions_for_a_stored_call_per_customer_turn_without_its_own_reply(tmp_path):
    with _store_with_history(tmp_path) as store:
        found = suggestions_for_call(store, "c1", 3, CFG)
        assert set(found) == {0, 2}
        first = found[0][0]
        assert first["text"].startswith("Please restart the router") and first["support"] == 4
        assert first["next_acts"][0]["act"] == "solution_offered"
        # "bill" is the only call with its reply, so it gets no suggestion of it back.
        assert all(s["text"] != "Let me check the bill." for s in suggestions_for_call(store, "bill", 3, CFG)[0])
        one = suggest_for_call_turn(store, "c1", 0, 2, CFG)
        assert one["acts"][0]["act"] == "solution_offered"
        with pytest.raises(KeyError):
            suggestions_for_call(store, "nope", 3, CFG)


def test_cli_suggest(tmp_path, capsys):
    import json

    from pipeline.cli import main

    _store_with_history(tmp_path).close()
    assert main(["suggest", str(tmp_path), "--call", "c2", "--turn", "0", "-k", "2", "--set", "suggest.min_support=2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["acts"][0]["act"] == "solution_offered" and out["responses"]
    assert main(["suggest", str(tmp_path)]) == 2
