import json

import pytest

from pipeline.config import Config, SuggestConfig
from pipeline.records import Call, Turn, TurnTags
from pipeline.scoring import analyze_call
from pipeline.sequences import call_events
from pipeline.store import Store
from pipeline.suggest import (
    SuggestIndex,
    act_model,
    moments,
    normalize_response,
    save_index,
    suggest,
    suggest_for_call_turn,
    suggestions_for_call,
)

CFG = SuggestConfig(k=3, context=2, min_support=2, prior=2.0)
WELCOME = "You are welcome, have a nice day!"


def history():
    """Router problems: offering a restart resolves (and is thanked), asking for the account number does not."""
    calls = []
    for i in range(6):
        offer = i % 3 != 0
        if offer:
            acts = ["problem_stated", "solution_offered", "solution_confirmed", "other", "other"]
            texts = ["My internet router is down", f"Please restart the router, ticket {i}.", "Thanks, it works", WELCOME, "bye"]
        else:
            acts = ["problem_stated", "other", "other"]
            texts = ["My internet router is down", "What is your account number?", "12345"]
        calls.append((f"c{i}", acts, texts))
    calls.append(("bill", ["problem_stated", "other", "other"], ["My bill is too high", "Let me check the bill.", "ok"]))
    return calls


def roles_of(texts):
    return ["customer" if i % 2 == 0 else "agent" for i in range(len(texts))]


def index_from(calls, cfg=CFG):
    index = SuggestIndex(cfg)
    for call_id, acts, texts in calls:
        roles = roles_of(texts)
        labels = [f"{r}:{a}" for r, a in zip(roles, acts)]
        for m in moments(call_id, labels, roles, acts, texts, "solution_confirmed" in acts, cfg.context):
            index.add(m)
    return index


def test_next_act_probability_backs_off_witten_bell_and_ranks_with_resolution():
    index = index_from(history())
    result = suggest(index, ["customer:problem_stated"], "router down again", 3, CFG)
    assert result["context"] == ["customer:problem_stated"] and result["moments"] == 7
    top, second = result["acts"]
    # All moments: solution_offered 4 of 11, other 7 of 11. After a problem statement: 4 and 3, two kinds of act.
    assert top["act"] == "solution_offered" and top["support"] == 4 and second["support"] == 3
    assert top["probability"] == pytest.approx((4 + 2 * 4 / 11) / (7 + 2), abs=1e-4)
    assert second["probability"] == pytest.approx((3 + 2 * 7 / 11) / (7 + 2), abs=1e-4)
    # Resolution rate smoothed toward the shorter context's (itself toward the overall 8 of 11).
    rate_all = (4 + 2 * 8 / 11) / (4 + 2)
    assert top["resolution_probability"] == pytest.approx((4 + 2 * rate_all) / (4 + 2), abs=1e-4)
    for a in (top, second):
        assert a["score"] == pytest.approx(a["probability"] * a["resolution_probability"], abs=2e-4)
    assert sum(p for p, _ in act_model(index, ["customer:problem_stated"], CFG).values()) == pytest.approx(1.0)


def test_the_next_act_follows_the_context():
    index = index_from(history())
    after_problem = suggest(index, ["customer:problem_stated"], "router down", 3, CFG)
    after_thanks = suggest(index, ["agent:solution_offered", "customer:solution_confirmed"], "Thanks, it works", 3, CFG)
    assert after_problem["acts"][0]["act"] == "solution_offered"
    assert after_thanks["context"] == ["agent:solution_offered", "customer:solution_confirmed"]
    assert after_thanks["acts"][0]["act"] == "other" and after_thanks["acts"][0]["probability"] > 0.95
    # An act never seen in this context keeps a small backed-off probability, so it is still listed (hits@k).
    assert [a["act"] for a in after_thanks["acts"]] == ["other", "solution_offered"]
    assert after_thanks["acts"][1]["support"] == 0 and 0 < after_thanks["acts"][1]["probability"] < 0.05


def test_responses_come_from_resolved_calls_and_read_like_the_neighbours_replies():
    index = index_from(history())
    result = suggest(index, ["customer:problem_stated"], "my router is down", 3, CFG)
    texts = [r["text"] for r in result["responses"]]
    assert texts[0] == "Please restart the router, ticket 1."  # one response: ticket numbers do not make it new
    assert "What is your account number?" not in texts and "Let me check the bill." not in texts  # never resolved
    r = result["responses"][0]
    assert r["support"] == 4 and r["resolved"] == 4 and r["act"] == "solution_offered" and r["similarity"] > 0.7
    assert r["example_call_id"] in {"c1", "c2", "c4", "c5"}
    thanks = suggest(index, ["agent:solution_offered", "customer:solution_confirmed"], "thanks a lot, it works now", 3, CFG)
    assert thanks["responses"][0]["text"] == WELCOME
    assert normalize_response("Ticket 12  OK") == normalize_response("ticket 7 ok")
    anything = suggest(index, ["customer:problem_stated"], "my router is down", 3, SuggestConfig(k=3, context=2, min_support=2, resolved_only=False))
    assert "What is your account number?" in [r["text"] for r in anything["responses"]]


def test_equally_fitting_responses_are_ordered_by_the_resolution_they_led_to():
    calls = []
    for i in range(6):
        good = i < 3
        reply = "Open the tray and remove the jammed paper." if good else "Open the tray and remove the jammed paper, then wait."
        confirmed = good or i == 3
        calls.append((f"p{i}", ["problem_stated", "solution_offered", "solution_confirmed" if confirmed else "other"],
                      ["The printer has a paper jam", reply, "done" if confirmed else "no"]))
    result = suggest(index_from(calls), ["customer:problem_stated"], "paper jam in my printer", 3, CFG)
    first, second = result["responses"]
    assert first["text"].endswith("jammed paper.") and first["resolved"] == 3
    assert second["resolved"] == 1 and second["resolution_probability"] < first["resolution_probability"]
    assert abs(first["agreement"] - second["agreement"]) < 0.1 and first["score"] > second["score"]


def test_context_backs_off_when_the_long_one_is_unseen():
    result = suggest(index_from(history()), ["agent:other", "customer:problem_stated"], "router", 3, CFG)
    assert result["context"] == ["customer:problem_stated"]
    nothing = suggest(index_from(history()), ["customer:never_seen"], "x", 3, CFG)
    assert nothing["context"] == [] and nothing["moments"] == 11
    assert nothing["acts"][0]["probability"] == pytest.approx(7 / 11, abs=1e-4)
    assert nothing["responses"]  # no similar customer turn: what agents answer most often, from resolved calls


def _store_with_history(tmp_path):
    store = Store(tmp_path)
    run = store.start_run({}, {})
    cfg = Config()
    for call_id, acts, texts in history():
        turns = tuple(Turn(i, r, 0.0, 0.0, t) for i, (r, t) in enumerate(zip(roles_of(texts), texts)))
        call = Call(call_id, "x.json", 0.0, 0, "en", turns, metadata={"modality": "text"})
        tags = [TurnTags(a, 0.9) for a in acts]
        store.save_call(run, call, tags, analyze_call(call, tags, cfg.scoring), call_events(turns, tags))
    save_index(store, CFG)
    return store


def test_suggestions_for_a_stored_call_per_customer_turn_without_its_own_reply(tmp_path):
    with _store_with_history(tmp_path) as store:
        # Unresolved replies are saved (they are neighbours) but never suggested.
        saved = {r["text"]: r for r in store.suggest_responses("[]")}
        assert saved["What is your account number?"]["resolved"] == 0
        found = suggestions_for_call(store, "c1", 3, CFG)
        assert set(found) == {0, 2, 4}
        first = found[0][0]
        assert first["text"].startswith("Please restart the router") and first["support"] == 4
        assert first["example_call_id"] != "c1"
        assert first["next_acts"][0]["act"] == "solution_offered"
        assert found[2][0]["text"] == WELCOME and found[2][0]["next_acts"][0]["act"] == "other"
        assert all(s["resolved"] > 0 for turn in found.values() for s in turn)
        # "bill" is the only call with its reply, so it gets no suggestion of it back.
        assert all(s["text"] != "Let me check the bill." for s in suggestions_for_call(store, "bill", 3, CFG)[0])
        one = suggest_for_call_turn(store, "c1", 0, 2, CFG)
        assert one["acts"][0]["act"] == "solution_offered" and one["acts"][0]["resolution_probability"] > 0.5
        with pytest.raises(KeyError):
            suggestions_for_call(store, "nope", 3, CFG)


def test_cli_suggest(tmp_path, capsys):
    from pipeline.cli import main

    _store_with_history(tmp_path).close()
    assert main(["suggest", str(tmp_path), "--call", "c2", "--turn", "0", "-k", "2", "--set", "suggest.min_support=2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["acts"][0]["act"] == "solution_offered" and {"probability", "resolution_probability", "support"} <= set(out["acts"][0])
    assert out["responses"] and out["responses"][0]["text"].startswith("Please restart the router")
    assert main(["suggest", str(tmp_path)]) == 2
    capsys.readouterr()
    for bad in (["-k", "0"], ["-k", "-3"], ["--transcript", str(tmp_path / "t.json")]):
        assert main(["suggest", str(tmp_path), "--call", "c2", "--turn", "0", *bad]) == 2
    err = capsys.readouterr().err
    assert "-k must be >= 1, got 0" in err and "-k must be >= 1, got -3" in err and "not both" in err
    assert main(["suggest", str(tmp_path), "--call", "c2", "--turn", "99"]) == 2
    assert "not stored: c2 has no turn 99" in capsys.readouterr().err


@pytest.mark.parametrize("resolved_only", [True, False])
@pytest.mark.parametrize("exclude", [None, "c1"])
def test_the_top_k_responses_are_the_head_of_the_whole_ranking(resolved_only, exclude):
    from dataclasses import replace

    cfg = replace(CFG, resolved_only=resolved_only)
    index = index_from(history())
    whole = suggest(index, ["customer:problem_stated"], "the router is down", 1000, cfg, exclude_call=exclude)["responses"]
    assert whole
    for k in range(1, len(whole) + 1):
        assert suggest(index, ["customer:problem_stated"], "the router is down", k, cfg, exclude_call=exclude)["responses"] == whole[:k]
    assert suggest(index, ["customer:problem_stated"], "the router is down", 0, cfg)["responses"] == []
