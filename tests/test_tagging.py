"""Tagging stage: the acts estimator, its spaCy component, the Tagger and the STC3 reader.

Everything here runs on small inline dialogues (plus the shipped acts models), never on
the shared datasets.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from pipeline.config import MODELS_DIR, TaggingConfig
from pipeline.records import ACTS, AGENT, CUSTOMER, UNKNOWN, Turn, TurnTags
from pipeline.tagging import Tagger, load_tagger
from pipeline.tagging.acts import ActClassifier, _whole_dialogue_batches, as_table, dialogue_rows, load_model, save_model
from pipeline.tagging.nlp import acts_model_for, build_nlp
from pipeline.tagging.training import evaluate_acts, load_stc3, majority_act, vote_shares

PROBLEMS = [
    "My internet connection is not working since yesterday, please help",
    "I cannot log in to my account, the app says password error",
    "The phone screen stays black and will not turn on",
    "I was charged twice for my monthly bill this month",
    "My package has not arrived and the tracking page shows no update",
    "The router keeps dropping the wifi signal every evening",
]
SOLUTIONS = [
    "Please restart the router by holding the reset button for ten seconds",
    "Please reset your password from the settings page and then log in again",
    "Please hold the power button for fifteen seconds to restart the phone",
    "We have refunded the duplicate charge, it will appear on your card in three days",
]
CONFIRMATIONS = [
    "It works now, thank you, the problem is solved",
    "Thanks, that fixed it, everything is fine now",
    "Solved, thank you so much for the help",
]
QUESTIONS = [
    "Hello, we are sorry for the trouble. Could you send us your account number?",
    "Sorry for the inconvenience. Which model do you use?",
]
REPLIES = ["My account number is 12345678", "It is the model T2, bought last year"]
CLOSINGS = ["You are welcome, have a nice day", "Glad we could help, goodbye"]


def inline_dialogues() -> list[list[tuple[str, str, str]]]:
    """Deterministic small helpdesk dialogues as (role, text, act) turns, in four shapes."""
    dialogues = []
    combos = itertools.product(range(len(PROBLEMS)), range(len(SOLUTIONS)))
    for n, (p, s) in enumerate(combos):
        problem = (CUSTOMER, PROBLEMS[p], "problem_stated")
        solution = (AGENT, SOLUTIONS[s], "solution_offered")
        confirm = (CUSTOMER, CONFIRMATIONS[n % len(CONFIRMATIONS)], "solution_confirmed")
        question = (AGENT, QUESTIONS[n % len(QUESTIONS)], "other")
        reply = (CUSTOMER, REPLIES[n % len(REPLIES)], "other")
        closing = (AGENT, CLOSINGS[n % len(CLOSINGS)], "other")
        shape = n % 4
        if shape == 0:
            dialogues.append([problem, solution, confirm])
        elif shape == 1:
            dialogues.append([problem, question, reply, solution, confirm, closing])
        elif shape == 2:
            dialogues.append([problem, question, reply])
        else:
            dialogues.append([problem, solution, confirm, closing])
    return dialogues


def to_xy(dialogues):
    rows, labels = [], []
    for d, turns in enumerate(dialogues):
        rows += dialogue_rows([(role, text) for role, text, _ in turns], dialogue=d)
        labels += [act for _, _, act in turns]
    return as_table(rows), np.asarray(labels, dtype=object)


@pytest.fixture(scope="module")
def fitted() -> ActClassifier:
    X, y = to_xy(inline_dialogues())
    return ActClassifier(lang="en", cv=3).fit(X, y)


def turns_of(pairs) -> tuple[Turn, ...]:
    return tuple(Turn(index=i, role=role, start=2.0 * i, end=2.0 * i + 1.5, text=text) for i, (role, text) in enumerate(pairs))


CALL = [
    (CUSTOMER, "My wifi is not working and the router light is red, please help"),
    (AGENT, "Sorry for the inconvenience. Could you send us your account number?"),
    (CUSTOMER, "My account number is 87654321"),
    (AGENT, "Please restart the router by holding the reset button for ten seconds"),
    (CUSTOMER, "It works now, thanks, the problem is solved"),
]


# --- the estimator ----------------------------------------------------------------------------

def test_estimator_learns_the_obvious_cases(fitted):
    X = as_table(dialogue_rows(CALL, dialogue="new"))
    predicted = list(fitted.predict(X))
    assert predicted[0] == "problem_stated"
    assert predicted[1] == "other"
    assert predicted[4] == "solution_confirmed"
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(CALL), len(fitted.classes_))
    assert np.allclose(proba.sum(axis=1), 1.0)


def test_fast_stage1_scores_equal_the_pipelines(fitted):
    X = as_table(dialogue_rows(CALL, dialogue="a") + dialogue_rows(CALL[:2], dialogue="b"))
    assert np.allclose(fitted._fast_scores(X), fitted.stage1_.decision_function(X), atol=1e-6)


def test_known_roles_get_only_their_own_acts_from_predict(fitted):
    X = as_table(dialogue_rows(CALL, dialogue="a"))
    for (role, _), act in zip(CALL, fitted.predict(X)):
        allowed = {"solution_offered", "other"} if role == AGENT else {"problem_stated", "solution_confirmed", "other"}
        assert act in allowed


def test_logistic_stage1_and_context_words():
    X, y = to_xy(inline_dialogues())
    model = ActClassifier(lang="en", cv=3, stage1="logreg", C=10.0, context_words=True).fit(X, y)
    names = [name for name, _, _ in model.stage1_.named_steps["features"].transformers_]
    assert {"prev_word", "next_word", "prev_char", "next_char"} <= set(names)
    X_new = as_table(dialogue_rows(CALL, dialogue="new"))
    assert np.allclose(model._fast_scores(X_new), model.stage1_.decision_function(X_new), atol=1e-6)
    assert model.predict(X_new)[0] == "problem_stated"
    assert model.stage2_.class_weight is None
    balanced = ActClassifier(lang="en", cv=3, stage2_class_weight="balanced").fit(X, y)
    assert balanced.stage2_.class_weight == "balanced"
    with pytest.raises(ValueError, match="stage1"):
        ActClassifier(cv=3, stage1="forest").fit(X, y)


def test_unknown_roles_still_get_valid_acts(fitted):
    X = as_table(dialogue_rows([(UNKNOWN, text) for _, text in CALL]))
    predicted = fitted.predict(X)
    assert len(predicted) == len(CALL) and set(predicted) <= set(ACTS)


def test_unfitted_estimator_raises_not_fitted():
    with pytest.raises(NotFittedError):
        ActClassifier().predict(as_table(dialogue_rows(CALL)))


def test_invalid_labels_raise_in_fit():
    X, y = to_xy(inline_dialogues())
    y = y.copy()
    y[0] = "complaint"
    with pytest.raises(ValueError, match="complaint"):
        ActClassifier(cv=3).fit(X, y)
    with pytest.raises(ValueError, match="two different acts"):
        ActClassifier(cv=3).fit(X, np.full(len(X), "other", dtype=object))


def test_constructor_only_stores_arguments():
    model = ActClassifier(lang="xx", C=-1.0)  # nothing is checked before fit
    assert model.get_params()["lang"] == "xx"
    X, y = to_xy(inline_dialogues())
    with pytest.raises(ValueError, match="lang"):
        model.fit(X, y)


def test_save_and_load_round_trip(fitted, tmp_path):
    path = save_model(fitted, tmp_path / "acts-test.skops")
    loaded, version = load_model(path)
    X = as_table(dialogue_rows(CALL))
    assert list(loaded.predict(X)) == list(fitted.predict(X))
    assert version.startswith("acts-test@sha256:")


# --- the Tagger -------------------------------------------------------------------------------

def test_tagger_returns_one_turn_tags_per_turn(fitted, tmp_path):
    path = save_model(fitted, tmp_path / "acts-inline.skops")
    tagger = Tagger(build_nlp(TaggingConfig(acts_model=str(path)), "en", intents=False), batch_size=2)
    # Two calls in a row through one tagger; a batch size smaller than a call must not cut it.
    for call in (CALL, CALL[:3]):
        tags = tagger.tag(turns_of(call))
        assert len(tags) == len(call)
        assert all(isinstance(t, TurnTags) and t.act in ACTS and 0.0 <= t.act_confidence <= 1.0 for t in tags)
        assert tags[0].act == "problem_stated"
    assert tagger.tag(()) == []
    assert tagger.model_versions["acts"].startswith("acts-inline@sha256:")


def test_batches_never_cut_a_call(fitted, tmp_path):
    path = save_model(fitted, tmp_path / "acts-inline.skops")
    nlp = build_nlp(TaggingConfig(acts_model=str(path)), "en", intents=False)
    small, large = Tagger(nlp, batch_size=2), Tagger(nlp, batch_size=256)
    assert small.tag(turns_of(CALL)) == large.tag(turns_of(CALL))
    docs = small.docs(turns_of(CALL)) + small.docs(turns_of(CALL[:2]))
    batches = list(_whole_dialogue_batches(docs, batch_size=2))
    assert [len(b) for b in batches] == [5, 2]


def test_chinese_calls_use_the_chinese_model():
    assert acts_model_for("acts-en", "zh") == "acts-zh"
    assert acts_model_for("acts-en", "en") == "acts-en"
    assert acts_model_for("my/acts.skops", "zh") == "my/acts.skops"


@pytest.mark.skipif(not (MODELS_DIR / "acts-en.skops").is_file(), reason="models/acts-en.skops not built")
def test_shipped_english_model_tags_a_problem_statement():
    model, _ = load_model("acts-en")
    turns = [
        (CUSTOMER, "My phone cannot connect to the network since this morning. What should I do?"),
        (AGENT, "Hello! Please restart the phone and check whether the mobile data switch is on."),
    ]
    assert model.predict(as_table(dialogue_rows(turns)))[0] == "problem_stated"


SHIPPED = [MODELS_DIR / "acts-en.skops", MODELS_DIR / f"{TaggingConfig().intent_model}.skops"]


@pytest.mark.skipif(not all(p.is_file() for p in SHIPPED), reason="shipped acts/intent models not built")
def test_default_tagger_on_an_english_call():
    tagger = load_tagger(TaggingConfig(), "en")
    assert load_tagger(TaggingConfig(), "en") is tagger  # cached: models load once
    tags = tagger.tag(turns_of(CALL))
    assert len(tags) == len(CALL)
    assert tags[0].act == "problem_stated"
    assert all(t.intent is None for t, (role, _) in zip(tags, CALL) if role == AGENT)
    assert all(t.intent is not None for t, (role, _) in zip(tags, CALL) if role == CUSTOMER)
    assert {"acts", "intent"} <= set(tagger.model_versions)



def test_doc_extensions_read_and_write_the_components_fields():
    from spacy.tokens import Doc

    tagger = load_tagger(TaggingConfig(), "en")
    docs = tagger.docs(turns_of(CALL))
    docs = list(tagger.nlp.pipe(docs))
    tags = tagger.tag(turns_of(CALL))
    assert [d._.act for d in docs] == [t.act for t in tags]
    assert [d._.intent for d in docs] == [t.intent for t in tags]
    assert [d._.turn_text for d in docs] == [text for _, text in CALL]
    assert docs[1]._.prev_text == CALL[0][1] and docs[0]._.role == CALL[0][0]
    # Set through an extension, read by a component: a Doc made outside Tagger.docs.
    doc = tagger.nlp.make_doc("I want to cancel my subscription")
    assert doc._.role == UNKNOWN and doc._.turn_text == doc.text
    doc._.role = CUSTOMER
    assert tagger.nlp(doc)._.intent == "cancellation"
    # The fields live in user_data, so a tagged Doc survives serialisation.
    again = Doc(tagger.nlp.vocab).from_bytes(doc.to_bytes())
    assert again._.intent == "cancellation" and again._.role == CUSTOMER
    # No text set means the Doc's own.
    doc._.turn_text = None
    assert doc._.turn_text == doc.text and tagger.nlp(doc)._.intent == "cancellation"


def test_an_extension_name_taken_by_other_code_is_refused():
    from spacy.tokens import Doc

    from pipeline.tagging import turnstate

    Doc.set_extension("callpipe_test_taken", default=None)
    try:
        with pytest.raises(RuntimeError, match="callpipe_test_taken.*already registered by other code"):
            turnstate._register("act", "callpipe_test_taken")
    finally:
        Doc.remove_extension("callpipe_test_taken")
    turnstate._register("act", "act")  # its own registration again is fine


@pytest.mark.skipif(not all(p.is_file() for p in SHIPPED), reason="shipped acts/intent models not built")
def test_calls_tagged_together_get_the_tags_they_get_alone():
    tagger = load_tagger(TaggingConfig(), "en")
    other = [
        (CUSTOMER, "My card number is 4111 1111 1111 1111 and I was billed twice, this is awful."),
        (AGENT, "I am sorry. I have refunded the second charge, it shows in three days."),
        (CUSTOMER, "Great, that fixed it, thanks!"),
    ]
    calls = [turns_of(CALL), turns_of(other), turns_of(CALL[:1])]
    together = tagger.tag_calls(calls)
    alone = [tagger.tag(turns) for turns in calls]
    # Equal but for the last bits of the confidences (the sums run in another order in a larger batch).
    for a, b in zip(together, alone):
        assert [(t.act, t.intent, t.entities, t.redacted_text, t.sentiment) for t in a] == [(t.act, t.intent, t.entities, t.redacted_text, t.sentiment) for t in b]
        assert [t.act_confidence for t in a] == pytest.approx([t.act_confidence for t in b], abs=1e-9)
        assert [t.intent_confidence for t in a] == pytest.approx([t.intent_confidence for t in b], abs=1e-9)
    assert together[1][0].pii_found and "[CARD]" in together[1][0].redacted_text
    assert tagger.tag_calls([]) == []

# --- STC3 reading and evaluation --------------------------------------------------------------

def test_majority_act_maps_labels_before_voting():
    assert majority_act(["CNUG0"] * 10 + ["CNaN"] * 9) == "problem_stated"
    # 7 say confirmed, 12 say not: regular and not-a-nugget both mean "no act".
    assert majority_act(["CNUG*"] * 7 + ["CNUG"] * 6 + ["CNaN"] * 6) == "other"
    assert majority_act(["HNUG*"] * 10 + ["HNUG"] * 9) == "solution_offered"


def test_vote_shares_follow_the_acts_order():
    shares = vote_shares(["CNUG0"] * 10 + ["CNUG*"] * 5 + ["CNaN"] * 4)
    assert dict(zip(ACTS, shares)) == pytest.approx(
        {"problem_stated": 10 / 19, "solution_confirmed": 5 / 19, "other": 4 / 19, "solution_offered": 0.0}
    )


def test_soft_labels_learn_from_the_minority_votes():
    """A turn most annotators call "other" but many call a confirmation pulls stage 1 towards
    a confirmation only when the votes are given."""
    X, y = to_xy(inline_dialogues())
    votes = np.array([[float(act == a) for a in ACTS] for act in y])
    ambiguous = [i for i, text in enumerate(X[:, 0]) if str(text) in REPLIES]
    confirmed, other = ACTS.index("solution_confirmed"), ACTS.index("other")
    votes[ambiguous, confirmed], votes[ambiguous, other] = 0.45, 0.55
    hard = ActClassifier(lang="en", cv=3).fit(X, y)
    soft = ActClassifier(lang="en", cv=3).fit(X, y, votes=votes)
    column = list(hard.classes_).index("solution_confirmed")
    rows = X[ambiguous]
    assert (soft._fast_scores(rows)[:, column] > hard._fast_scores(rows)[:, column]).all()
    with pytest.raises(ValueError, match="votes must have shape"):
        ActClassifier(lang="en", cv=3).fit(X, y, votes=votes[:, :2])


def stc3_json(dialogues) -> list[dict]:
    act_to_label = {
        (CUSTOMER, "problem_stated"): "CNUG0",
        (CUSTOMER, "solution_confirmed"): "CNUG*",
        (CUSTOMER, "other"): "CNaN",
        (AGENT, "solution_offered"): "HNUG*",
        (AGENT, "other"): "HNUG",
    }
    items = []
    for n, turns in enumerate(dialogues):
        labels = [act_to_label[(role, act)] for role, _, act in turns]
        items.append(
            {
                "id": str(n),
                "turns": [
                    {"sender": "customer" if role == CUSTOMER else "helpdesk", "utterances": [text, ""]}
                    for role, text, _ in turns
                ],
                "annotations": [{"nugget": labels, "quality": {"A": 0, "S": 0, "E": 0}}] * 19,
            }
        )
    return items


def test_evaluate_acts_on_stc3_format_files(tmp_path):
    dialogues = inline_dialogues()
    train, test = tmp_path / "train.json", tmp_path / "test.json"
    train.write_text(json.dumps(stc3_json(dialogues[:18])), encoding="utf-8")
    test.write_text(json.dumps(stc3_json(dialogues[18:])), encoding="utf-8")
    loaded = load_stc3(test)
    assert loaded[0].turns[0] == (CUSTOMER, dialogues[18][0][1])
    assert loaded[0].acts == tuple(act for _, _, act in dialogues[18])
    metrics = evaluate_acts(train=train, test=test, lang="en", out=None)
    assert set(metrics) >= {"accuracy", "macro_f1", "per_class"}
    assert set(metrics["per_class"]) == set(ACTS)
    assert metrics["per_class"]["problem_stated"] > 0.9


def test_unannotated_test_file_is_refused(tmp_path):
    items = stc3_json(inline_dialogues()[:4])
    for item in items:
        del item["annotations"]
    test = tmp_path / "test.json"
    test.write_text(json.dumps(items), encoding="utf-8")
    train = tmp_path / "train.json"
    train.write_text(json.dumps(stc3_json(inline_dialogues())), encoding="utf-8")
    with pytest.raises(ValueError, match="no annotations"):
        evaluate_acts(train=train, test=test, out=None)


def test_known_roles_only_get_their_own_acts():
    import numpy as np

    from pipeline.tagging.acts import mask_by_role

    classes = np.array(["other", "problem_stated", "solution_confirmed", "solution_offered"])
    proba = np.array([[0.1, 0.6, 0.1, 0.2], [0.1, 0.1, 0.1, 0.7], [0.1, 0.7, 0.1, 0.1]])
    masked = mask_by_role(proba, ["agent", "customer", "unknown"], classes)
    assert classes[masked[0].argmax()] == "solution_offered" and masked[0][1] == 0
    assert classes[masked[1].argmax()] == "other" and masked[1][3] == 0
    assert np.allclose(masked.sum(axis=1), 1.0)
    assert np.array_equal(masked[2], proba[2])


@pytest.mark.parametrize(
    "content, reason",
    [
        ({"hello": 1}, "expected a non-empty list of STC3 dialogues"),
        ([], "expected a non-empty list of STC3 dialogues"),
        ([{"id": "1", "turns": [{"sender": "robot", "utterances": ["hi"]}]}], "dialogue 0: not an STC3 dialogue (unknown sender 'robot')"),
        ([{"id": "1"}], "dialogue 0: not an STC3 dialogue (missing 'turns')"),
        ("not json", "not a readable STC3 JSON file"),
        (None, "not a readable STC3 JSON file"),  # a folder
    ],
)
def test_evaluate_acts_names_a_bad_file_in_one_line(tmp_path, capsys, content, reason):
    from pipeline.cli import main

    train = tmp_path / "train.json"
    train.write_text(json.dumps(stc3_json(inline_dialogues())), encoding="utf-8")
    bad = tmp_path / "bad.json"
    if content is None:
        bad.mkdir()
    else:
        bad.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    assert main(["evaluate", "acts", "--train", str(train), "--test", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(bad) in err and reason in err and len(err.splitlines()) == 1
