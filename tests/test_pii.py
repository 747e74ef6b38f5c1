"""Entities, PII and redaction: rule cases, the call-level pass, storage, and the real sample calls."""

from __future__ import annotations

import json

import pytest
import spacy

from pipeline.config import Config, ConfigError, PrivacyConfig, TaggingConfig, load_config, parse_override
from pipeline.privacy import redact_call
from pipeline.records import AGENT, CUSTOMER, Call, Turn, Word
from pipeline.tagging.entities import Detector, luhn_ok, number_runs


@pytest.fixture(scope="module")
def nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe("callpipe_pii", config={"products": ["Ford Fusion", "Premium Plan"]})
    return nlp


def found(nlp, text):
    doc = nlp(text)
    return [(e["type"], e["text"]) for e in doc._.entities], doc._.redacted_text


def types(nlp, text):
    return {t for t, _ in found(nlp, text)[0]}


# --- numbers -----------------------------------------------------------------------------------

def test_spoken_digits_become_one_number():
    runs = number_runs("call me on four five seven, one two double three")
    assert [r.digits for r in runs] == ["4571233"]
    every_word = number_runs("Zero oh one two three four five six seven eight nine, Double two, TRIPLE three")
    assert [r.digits for r in every_word] == ["0012345678922333"]


@pytest.mark.parametrize("text, kind", [
    ("CALL ME ON FIVE FIVE FIVE ONE TWO THREE FOUR", "PHONE"),  # shouting, or a caps transcript
    ("phone fıve nıne nıne", "PHONE"),  # letters case-blind matching reads as i and s
    ("my number is ſix ſeven ſix", "PHONE"),
    ("thıs is John", "NAME"),
])
def test_cases_and_letters_the_patterns_match_are_not_skipped(nlp, text, kind):
    assert kind in types(nlp, text)


def test_spoken_phone_number_is_redacted(nlp):
    ents, red = found(nlp, "you can reach me at four five seven one two three four, thanks")
    assert ("PHONE", "four five seven one two three four") in ents
    assert red == "you can reach me at [PHONE], thanks"


def test_partial_number_after_a_phone_cue_counts_but_not_without(nlp):
    assert "PHONE" in types(nlp, "Their number is 3, 3, 3")
    assert not types(nlp, "I have 3, 3 or 3 options") & {"PHONE", "ID"}


@pytest.mark.parametrize("number", ["4111 1111 1111 1111", "4539-1488-0343-6467", "5555555555554444"])
def test_luhn_valid_card_numbers_are_cards(nlp, number):
    ents, red = found(nlp, f"the card is {number} ok")
    assert ("CARD", number) in ents
    assert red == "the card is [CARD] ok"


def test_luhn_invalid_number_is_not_a_card_but_still_redacted(nlp):
    assert not luhn_ok("4111111111111112")
    ents, red = found(nlp, "my number there is 4111 1111 1111 1112")
    assert "CARD" not in {t for t, _ in ents}
    assert "1112" not in red


def test_spoken_card_number_with_luhn(nlp):
    spoken = "four one one one one one one one one one one one one one one one"
    assert ("CARD", spoken) in found(nlp, f"it's {spoken}")[0]


def test_order_account_case_numbers_and_codes(nlp):
    assert ("ORDER", "5 5 3 1 2") in found(nlp, "my order number is 5 5 3 1 2")[0]
    assert ("ACCOUNT", "88213490") in found(nlp, "account 88213490 please")[0]
    assert ("CASE", "AB-12345") in found(nlp, "your case AB-12345 was closed")[0]


def test_ids_and_years(nlp):
    assert ("ID", "123-45-6789") in found(nlp, "social is 123-45-6789")[0]
    assert ("ID", "987654321") in found(nlp, "my social security number is 987654321")[0]
    assert not types(nlp, "It's a 2017 model, bought in 2019")


# --- emails, addresses, names --------------------------------------------------------------------

def test_emails_written_and_spoken(nlp):
    assert found(nlp, "mail jane.doe+x@example.co.uk now")[1] == "mail [EMAIL] now"
    assert "EMAIL" in types(nlp, "it's john dot smith at gmail dot com")


@pytest.mark.parametrize("text, address", [
    ("I live at 42 Oak Tree Lane, apartment 5 in town", "42 Oak Tree Lane, apartment 5"),
    ("ship it to twelve Main Street please", "twelve Main Street"),
    ("1600 Pennsylvania Avenue", "1600 Pennsylvania Avenue"),
])
def test_street_addresses(nlp, text, address):
    assert ("ADDRESS", address) in found(nlp, text)[0]


@pytest.mark.parametrize("text, spelled", [
    ("That's my T -I -L -L -E", "T -I -L -L -E"),
    ("King, K -I -N -G.", "K -I -N -G"),
    ("-I -L -E -I -T", "-I -L -E -I -T"),
    ("it is S-M-I-T-H", "S-M-I-T-H"),
    ("spelled T I L L E yes", "T I L L E"),
])
def test_spelled_letters_are_names(nlp, text, spelled):
    assert ("NAME", spelled) in found(nlp, text)[0]


def test_words_with_dashes_and_times_are_not_spelling(nlp):
    assert "NAME" not in types(nlp, "the high -end in -house make -and -model at 8 a .m. Bye -bye")


@pytest.mark.parametrize("cue", [
    "my name is", "His last name is", "her full name is", "the surname is", "first name is", "Surname is", "name's",
    "This is", "I'm", "I am", "call me", "speaking with", "talking to", "Mr.", "Mrs", "Ms", "Miss", "Dr.",
])
def test_every_name_cue_finds_the_name(nlp, cue):
    assert ("NAME", "Tilly") in found(nlp, f"yes {cue} Tilly and that is all")[0]


def test_names_after_cues_only_when_capitalised(nlp):
    assert ("NAME", "Violet King") in found(nlp, "Hello, my name is Violet King, and I bought a car")[0]
    assert ("NAME", "St. Tilly") in found(nlp, "My last name is St. Tilly.")[0]
    assert ("NAME", "Travis") in found(nlp, "This is Travis. How can I help?")[0]
    assert "NAME" not in types(nlp, "this is important and I'm calling because I am Sorry")


def test_money_dates_and_products_are_entities_not_pii(nlp):
    doc = nlp("It was $25 on January 5th, a Premium Plan for my ford fusion")
    got = {(e["type"], e["text"]) for e in doc._.entities}
    assert {("MONEY", "$25"), ("DATE", "January 5th"), ("PRODUCT", "Premium Plan"), ("PRODUCT", "ford fusion")} <= got
    assert not doc._.pii_found and doc._.redacted_text == doc.text


def test_chinese_phone_and_name():
    det = Detector()
    got = {(e["type"], e["text"]) for e in det.find("我叫王小明，我的电话是13812345678")}
    assert {("NAME", "王小明"), ("PHONE", "13812345678")} <= got


def test_pii_types_config_limits_redaction():
    nlp = spacy.blank("en")
    nlp.add_pipe("callpipe_pii", config={"products": [], "pii_types": ["phone"]})
    doc = nlp("my name is Jack and my number is 555 0134")
    assert doc._.redacted_text == "my name is Jack and my number is [PHONE]"


# --- the whole call ------------------------------------------------------------------------------

def turn(i, role, text, words=()):
    return Turn(index=i, role=role, start=float(i), end=i + 0.9, text=text, words=tuple(words))


@pytest.fixture(scope="module")
def tagger():
    from pipeline.tagging.nlp import Tagger, build_nlp

    return Tagger(build_nlp(TaggingConfig(), "en", intents=False))  # intents are not under test here


def test_number_read_out_across_turns_is_one_phone_number(tagger):
    turns = [turn(0, AGENT, "Okay. Their number is 3,"), turn(1, CUSTOMER, "3, 3,"), turn(2, AGENT, "2, 2,"),
             turn(3, CUSTOMER, "2. Okay. And they can fix my car.")]
    red = [t.redacted_text for t in tagger.tag(turns)]
    assert red == ["Okay. Their number is [PHONE],", "[PHONE],", "[PHONE],", "[PHONE]. Okay. And they can fix my car."]


def test_a_year_said_back_is_not_joined_into_a_number(tagger):
    turns = [turn(0, CUSTOMER, "It's a Ford Fusion. It's 2017."), turn(1, AGENT, "2017 Ford Fusion, okay.")]
    assert not any(t.pii_found for t in tagger.tag(turns))


def test_names_recur_across_the_call(tagger):
    turns = [turn(0, CUSTOMER, "Yes, my name is Violet. The IOLET. My last name is King."),
             turn(1, AGENT, "Thank you Violet, and King is spelled how?"),
             turn(2, AGENT, "So that is Jack Sattilly? No, Violet Kingsley.")]
    red = [t.redacted_text for t in tagger.tag(turns)]
    assert red[0] == "Yes, my name is [NAME]. The [NAME]. My last name is [NAME]."
    assert red[1] == "Thank you [NAME], and [NAME] is spelled how?"
    assert "Violet" not in red[2] and "Jack" in red[2]  # Jack was never given as a name here


# --- storage ------------------------------------------------------------------------------------

def _call_with_words():
    text = "my number is 555 0134 thanks"
    words = [Word(0.1 * i, 0.1 * i + 0.08, w, 0.9) for i, w in enumerate(text.split())]
    return Call("c", "s", 3.0, 1, "en", (turn(0, CUSTOMER, text, words), turn(1, AGENT, "great, bye")))


def test_redact_call_replaces_text_and_masks_words_keeping_times(tagger):
    call = _call_with_words()
    tags = tagger.tag(call.turns)
    stored, stored_tags = redact_call(call, tags, PrivacyConfig())
    first = stored.turns[0]
    assert first.text == "my number is [PHONE] thanks"
    assert [w.text for w in first.words] == ["my", "number", "is", "[PHONE]", "[PHONE]", "thanks"]
    assert [w.start for w in first.words] == [w.start for w in call.turns[0].words]
    assert stored.turns[1] == call.turns[1]
    assert "0134" not in json.dumps([list(t.entities) for t in stored_tags])


def test_store_unredacted_keeps_what_asr_heard(tagger):
    call = _call_with_words()
    tags = tagger.tag(call.turns)
    stored, stored_tags = redact_call(call, tags, PrivacyConfig(store_unredacted=True))
    assert stored == call and stored_tags == tags
    assert stored_tags[0].redacted_text == "my number is [PHONE] thanks"


def test_config_defaults_and_validation():
    cfg = Config()
    assert cfg.privacy.store_unredacted is False and "name" in cfg.tagging.pii_types
    with pytest.raises(ConfigError, match="tagging.pii_types: unknown type"):
        load_config(None, [parse_override("tagging.pii_types=['phone', 'shoe_size']")])
    cfg = load_config(None, [parse_override("tagging.products=['Ford Fusion']")])
    assert cfg.tagging.products == ("Ford Fusion",)


# --- real ASR output ----------------------------------------------------------------------------

def stored_text(out) -> str:
    """Everything the run stored about its calls: SQLite dump, call JSON and report pages."""
    import sqlite3

    db = sqlite3.connect(out / "callpipe.sqlite")
    parts = list(db.iterdump())
    db.close()
    parts += [p.read_text(errors="replace") for p in out.rglob("*") if p.suffix in (".json", ".html", ".js", ".csv")]
    return "\n".join(parts)


def test_real_stereo_call_is_stored_redacted(stereo_run):
    """aws_lca_call40: the customer gives his name ("Jack", "St. Tilly") and spells it ("T -I -L -L -E")."""
    record = json.loads(next((stereo_run["out"] / "calls").glob("*.json")).read_text())
    texts = "\n".join(t["text"] for t in record["turns"])
    assert texts.count("[NAME]") >= 4, texts
    assert any(t["tags"].get("pii_found") for t in record["turns"])
    assert all(isinstance(t["tags"].get("sentiment"), float) for t in record["turns"])
    everything = stored_text(stereo_run["out"])
    for leaked in ("Jack", "Tilly", "T -I -L", "-I -L -E"):
        assert leaked not in everything, leaked


@pytest.mark.slow
def test_real_mono_call_redacts_spelled_name_and_phone_read_in_pieces(tmp_path):
    """aws_pca_mono_call: "my name is Violet King ... The IOLET ... K -I -N -G", and a phone number read
    out in pieces across turns ("Their number is 3," / "3, 3," / "2, 2," / "2.")."""
    from pipeline.cli import main

    from .conftest import MONO_CALL

    out = tmp_path / "out"
    assert main(["run", str(MONO_CALL), "--out", str(out)]) == 0
    record = json.loads(next((out / "calls").glob("*.json")).read_text())
    texts = [t["text"] for t in record["turns"]]
    assert any("[PHONE]" in t for t in texts) and sum("[NAME]" in t for t in texts) >= 2
    everything = stored_text(out)
    for leaked in ("Violet", "IOLET", "King", "K -I -N", "3, 3", "2, 2"):
        assert leaked not in everything, leaked
