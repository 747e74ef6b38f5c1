import json

import pytest

from pipeline.config import Config
from pipeline.importers import TranscriptError, callpipe_call, detect_language, import_transcripts, is_transcript, load_transcripts
from pipeline.records import TurnTags

STC3 = [
    {
        "id": "101",
        "turns": [
            {"sender": "customer", "utterances": ["My broadband is down.", "Please help!"]},
            {"sender": "helpdesk", "utterances": ["Please restart the router."]},
            {"sender": "customer", "utterances": ["It works now, thanks."]},
        ],
        "annotations": [
            {"quality": {"A": 2, "S": 1, "E": 2}, "nugget": ["CNUG0", "HNUG*", "CNUG*"]},
            {"quality": {"A": 1, "S": 1, "E": 1}, "nugget": ["CNUG0", "HNUG*", "CNaN"]},
            {"quality": {"A": 0, "S": 1, "E": 0}, "nugget": ["CNUG0", "HNUG", "CNUG*"]},
        ],
    },
    {"id": "102", "turns": [{"sender": "customer", "utterances": ["Hello?"]}, {"sender": "helpdesk", "utterances": ["Hi."]}]},
]


class KeywordTagger:
    """Stands in for the trained tagger: acts from keywords."""

    model_versions = {"acts": "keywords"}

    def tag(self, turns):
        out = []
        for t in turns:
            text = t.text.lower()
            act = ("solution_confirmed" if "thanks" in text else "solution_offered" if "restart" in text
                   else "problem_stated" if "down" in text else "other")
            out.append(TurnTags(act=act, act_confidence=0.9))
        return out


@pytest.fixture
def keyword_tagger(monkeypatch):
    import pipeline.tagging

    monkeypatch.setattr(pipeline.tagging, "load_tagger", lambda cfg, lang: KeywordTagger())


def test_stc3_file_becomes_text_calls_with_roles_and_reference(tmp_path):
    path = tmp_path / "train_data_en.json"
    path.write_text(json.dumps(STC3))
    assert is_transcript(path)
    calls = load_transcripts(path)
    assert [c.call_id for c in calls] == ["stc3-en-101", "stc3-en-102"]
    first = calls[0]
    assert [t.role for t in first.turns] == ["customer", "agent", "customer"]
    assert first.turns[0].text == "My broadband is down. Please help!"
    assert first.duration == 0.0 and first.metadata["modality"] == "text" and first.language == "en"
    ref = first.metadata["reference"]
    assert ref["acts"] == ["problem_stated", "solution_offered", "solution_confirmed"]
    assert ref["quality"] == {"A": 1.0, "S": 1.0, "E": 1.0}
    assert ref["act_agreement"][1] == pytest.approx(2 / 3, abs=1e-3)
    assert "reference" not in calls[1].metadata


def test_chinese_is_detected_and_named_in_the_id(tmp_path):
    path = tmp_path / "dialogues.json"
    path.write_text(json.dumps([{"id": "7", "turns": [{"sender": "customer", "utterances": ["我的宽带断了"]}]}], ensure_ascii=False))
    (call,) = load_transcripts(path)
    assert call.language == "zh" and call.call_id == "stc3-zh-7"
    assert detect_language(["hello there"]) == "en"


def test_callpipe_json_with_times_keeps_them_and_without_is_text(tmp_path):
    timed = {"call_id": "c1", "language": "en", "duration": 12.0, "metadata": {"agent_id": "a7"},
             "turns": [{"turn_index": 0, "role": "agent", "start": 0.0, "end": 3.0, "text": "hello",
                        "words": [{"start": 0.0, "end": 1.0, "text": "hello", "probability": 0.9}]},
                       {"turn_index": 1, "role": "customer", "start": 3.5, "end": 6.0, "text": "hi"}]}
    call = callpipe_call(timed, "x.json")
    assert call.duration == 12.0 and call.turns[0].words[0].text == "hello" and call.metadata["agent_id"] == "a7"
    assert "modality" not in call.metadata
    chat = callpipe_call({"turns": [{"role": "helpdesk", "text": "hi"}, {"role": "user", "text": "help"}]}, "chat.json")
    assert [t.role for t in chat.turns] == ["agent", "customer"] and chat.metadata["modality"] == "text"
    path = tmp_path / "calls.json"
    path.write_text(json.dumps([timed, timed | {"call_id": "c2"}]))
    assert [c.call_id for c in load_transcripts(path)] == ["c1", "c2"]


def test_non_transcripts_are_refused(tmp_path):
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"hello": 1}))
    assert not is_transcript(bad) and not is_transcript(tmp_path / "missing.json")
    with pytest.raises(TranscriptError):
        load_transcripts(bad)


def test_import_stores_calls_like_run_and_skips_unchanged(tmp_path, keyword_tagger):
    from pipeline.store import Store

    src = tmp_path / "train_data_en.json"
    src.write_text(json.dumps(STC3))
    (tmp_path / "broken.json").write_text("{not json")
    out = tmp_path / "out"
    cfg = Config(report=Config().report.__class__(enabled=False))
    summary = import_transcripts([src, tmp_path / "broken.json"], out, cfg)
    assert summary.processed == 2 and summary.failed == 1
    with Store(out) as store:
        record = store.call_record("stc3-en-101")
        assert record["analysis"]["issue_state"] == "resolved"
        assert record["analysis"]["modality"] == "text"
        assert [t["tags"]["act"] for t in record["turns"]] == ["problem_stated", "solution_offered", "solution_confirmed"]
    assert (out / "calls" / "stc3-en-101.json").exists()
    again = import_transcripts([src], out, cfg)
    assert again.processed == 0 and again.skipped == 2


def test_cli_import(tmp_path, keyword_tagger):
    from pipeline.cli import main

    src = tmp_path / "d.json"
    src.write_text(json.dumps(STC3))
    assert main(["import", str(src), "--out", str(tmp_path / "o"), "--no-report"]) == 0
    assert (tmp_path / "o" / "calls" / "stc3-en-102.json").exists()


def test_two_workers_store_what_one_does(tmp_path):
    from pipeline.store import Store

    dialogues = [
        {**d, "id": f"{d['id']}{k}", "turns": [{**t, "utterances": [f"{u} (case {k})" for u in t["utterances"]]} for t in d["turns"]]}
        for k in range(3) for d in STC3
    ]
    src = tmp_path / "train_data_en.json"
    src.write_text(json.dumps(dialogues + dialogues[:1]))  # the first dialogue twice: stored once
    cfg = Config(report=Config().report.__class__(enabled=False))

    def stored(out):
        with Store(out) as store:
            return {cid: [(t["role"], t["text"], t["tags"]["act"], t["tags"]["intent"], t["tags"]["sentiment"]) for t in store.call_record(cid)["turns"]]
                    for cid in store.call_ids()}

    one = import_transcripts([src], tmp_path / "one", cfg)
    two = import_transcripts([src], tmp_path / "two", cfg, workers=2)
    assert one.processed == two.processed == len(dialogues) + 1 and one.failed == two.failed == 0
    assert stored(tmp_path / "one") == stored(tmp_path / "two")
    assert len(stored(tmp_path / "two")) == len(dialogues)
