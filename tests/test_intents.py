"""Customer intent: the estimator, its data readers, the shipped taxonomy model and the spaCy component.

Fast and self-contained: no /work/shared data. The sentence encoder loads once per
process (its weights come from an installed package), so the tests share it.
"""

from __future__ import annotations

import numpy as np
import pytest
import spacy
from sklearn.exceptions import NotFittedError

from pipeline.tagging.intents import (
    OTHER,
    IntentClassifier,
    load_model,
    make_intent_component,  # noqa: F401  (registers the factory)
    read_csv,
    read_taxonomy,
    save_model,
    train_intent_model,
)

TINY_CSV = """text,label
where is my package,order_status
my order has not arrived,order_status
when will my delivery come,order_status
track my parcel please,order_status
has my order shipped,order_status
I want my money back,refund
please refund the charge,refund
when do I get my refund,refund
I was promised a refund,refund
give me a refund for the broken item,refund
I forgot my password,account_access
I cannot log in to my account,account_access
my account is locked,account_access
reset my password please,account_access
the login code never arrives,account_access
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("intents") / "tiny.csv"
    path.write_text(TINY_CSV, encoding="utf-8")
    texts, labels = read_csv(path)
    return path, IntentClassifier(C=20.0).fit(texts, labels)


@pytest.fixture(scope="module")
def shipped():
    return load_model("intents-taxonomy")[0]


def test_fit_on_tiny_csv_and_predict(tiny):
    _, model = tiny
    assert sorted(model.classes_) == ["account_access", "order_status", "refund"]
    predicted = model.predict(["my parcel still hasn't arrived", "I need my money refunded", "I can't log in, forgot my password"])
    assert list(predicted) == ["order_status", "refund", "account_access"]
    proba = model.predict_proba(["where is my order"])
    assert proba.shape == (1, 3) and np.isclose(proba.sum(), 1.0)


def test_low_confidence_text_is_other(tiny, shipped):
    _, model = tiny
    labels, confidence = model.predict_with_other(["where is my package", "xqzv blorp wug"], threshold=0.6)
    assert labels[0] == "order_status" and confidence[0] >= 0.6
    assert labels[1] == OTHER and confidence[1] < 0.6
    labels, _ = shipped.predict_with_other(["asdf qwer zxcv", "the weather on mars is cold today", "okay thanks"], threshold=0.35)
    assert list(labels) == [OTHER] * 3


def test_saved_model_round_trips(tiny, tmp_path):
    _, model = tiny
    path = save_model(model, tmp_path / "tiny.skops")
    loaded, version = load_model(path)
    assert version.startswith("tiny@sha256:")
    texts = ["where is my parcel", "refund me"]
    assert np.allclose(loaded.predict_proba(texts), model.predict_proba(texts))


@pytest.mark.parametrize(
    "text, intent",
    [
        ("I want to cancel my subscription", "cancellation"),
        ("my internet has been down since this morning", "technical_problem"),
        ("I still haven't received my package, where is it", "order_status"),
        ("I was charged twice on my bill this month", "billing"),
        ("I forgot my password and can't log in", "account_access"),
        ("我要取消订阅", "cancellation"),
        ("我的快递还没到", "order_status"),
        ("我忘记密码了登录不了", "account_access"),
    ],
)
def test_shipped_taxonomy_model_on_clear_utterances(shipped, text, intent):
    labels, _ = shipped.predict_with_other([text], threshold=0.35)
    assert labels[0] == intent


def test_only_customer_docs_get_an_intent():
    nlp = spacy.blank("en")
    nlp.add_pipe("callpipe_intent", config={"model": "intents-taxonomy", "threshold": 0.35})
    docs = []
    for role, text in [("agent", "how can I help you today"), ("customer", "I want to cancel my subscription"), ("unknown", "cancel it")]:
        doc = nlp.make_doc(text)
        doc._.role = role
        docs.append(doc)
    agent, customer, unknown = list(nlp.pipe(docs))
    assert customer._.intent == "cancellation" and customer._.intent_confidence >= 0.35
    assert agent._.intent is None and agent._.intent_confidence == 0.0
    assert unknown._.intent is None and unknown._.intent_confidence == 0.0
    single = nlp(nlp.make_doc("where is my order"))  # role defaults to unknown
    assert single._.intent is None


def test_embedding_runs_only_on_customer_turns(monkeypatch):
    from pipeline.tagging.intents import StaticEmbedder

    encoded: list[str] = []
    original = StaticEmbedder.transform

    def recording(self, texts, *args, **kwargs):
        encoded.extend(texts)
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(StaticEmbedder, "transform", recording)
    nlp = spacy.blank("en")
    nlp.add_pipe("callpipe_intent", config={"model": "intents-taxonomy", "threshold": 0.35})
    turns = [
        ("agent", "thank you for calling, how can I help"),
        ("customer", "I was charged twice on my bill"),
        ("agent", "let me check that for you"),
        ("customer", "and I want to cancel my plan"),
    ]
    docs = []
    for role, text in turns:
        doc = nlp.make_doc(text)
        doc._.role = role
        docs.append(doc)
    list(nlp.pipe(docs))
    assert encoded == ["I was charged twice on my bill", "and I want to cancel my plan"]


def test_fast_probabilities_equal_the_pipelines(tiny, shipped):
    texts = ["where is my parcel", "refund me now please", "I cannot log in", "something else entirely", "x"]
    for model in (tiny[1], shipped):
        assert np.allclose(model.predict_proba(texts), model.pipeline_.predict_proba(texts), atol=1e-5)
    assert model.predict_proba([]).shape == (0, len(model.classes_))


def test_shipped_taxonomy_model_runs_no_transformer(shipped, monkeypatch):
    from pipeline.tagging.intents import BertEncoder

    def fail(self, *args, **kwargs):
        raise AssertionError("the encoder ran while tagging")

    monkeypatch.setattr(BertEncoder, "encode", fail)
    assert shipped.static_dims and shipped.predict(["I was charged twice on my bill"])[0] == "billing"


def test_static_embedding_is_a_unit_mean_of_token_vectors(tiny):
    from pipeline.tagging.intents import StaticEmbedder

    embedder = StaticEmbedder(dims=16).fit(["x"])
    vectors = embedder.transform(["bank account", "account bank", "", "我要退款", "refund"])
    assert vectors.shape == (5, 16)
    assert np.allclose(vectors[0], vectors[1], atol=1e-6)  # order-free: a bag of tokens
    assert np.allclose(np.linalg.norm(vectors[[0, 4]], axis=1), 1.0, atol=1e-5)
    assert not vectors[2].any() and not vectors[3].any()  # empty and Chinese text: zeros


def test_embedding_layer_zero_is_the_context_free_input():
    from pipeline.tagging.intents import load_encoder

    encoder = load_encoder()
    vectors = encoder.encode(["bank account", "account bank"], layers=(0,))
    assert vectors.shape == (2, encoder.dim)
    # Without attention, word order changes only the position embeddings, not which words are there.
    assert float(vectors[0] @ vectors[1]) > 0.8
    with pytest.raises(ValueError, match="layers"):
        encoder.encode(["x"], layers=(7,))


def test_not_fitted_error_before_fit():
    with pytest.raises(NotFittedError):
        IntentClassifier().predict(["hello"])


def test_bad_csv_names_the_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("utterance,label\nhello,greeting\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.csv.*'text'"):
        read_csv(path)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        read_csv(tmp_path / "missing.csv")


def test_bad_taxonomy_names_the_file(tmp_path):
    path = tmp_path / "tax.toml"
    path.write_text("[intents.billing]\nexamples = []\n", encoding="utf-8")
    with pytest.raises(ValueError, match="tax.toml.*intents.billing"):
        read_taxonomy(path)


def test_train_from_taxonomy_writes_model_and_card(tmp_path):
    taxonomy = tmp_path / "tax.toml"
    taxonomy.write_text(
        '[intents.refund]\nexamples = ["I want a refund", "give me my money back", "refund please", "我要退款"]\n'
        '[intents.order_status]\nexamples = ["where is my order", "my package is late", "track my delivery", "我的快递到哪了"]\n',
        encoding="utf-8",
    )
    path = train_intent_model(taxonomy=taxonomy, out=tmp_path / "m.skops")
    assert path.is_file()
    card = path.with_suffix(".md").read_text(encoding="utf-8")
    assert "callpipe train intents --taxonomy" in card and "accuracy" in card
    model, _ = load_model(path)
    assert model.predict(["where's my package"])[0] == "order_status"
