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


def test_cli_import(tmp_path, keyword_tagger, capsys):
    from pipeline.cli import main

    src = tmp_path / "d.json"
    src.write_text(json.dumps(STC3))
    assert main(["import", str(src), "--out", str(tmp_path / "o"), "--no-report"]) == 0
    assert (tmp_path / "o" / "calls" / "stc3-en-102.json").exists()
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("2 call(s) processed") and "h of audio" not in summary  # text calls have no audio to time


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
    assert one.processed == two.processed == len(dialogues) and one.failed == two.failed == 0
    assert one.duplicates == two.duplicates == 1
    assert stored(tmp_path / "one") == stored(tmp_path / "two")
    assert len(stored(tmp_path / "two")) == len(dialogues)


NO_REPORT = Config(report=Config().report.__class__(enabled=False))


def _stored_ids(out):
    from pipeline.store import Store

    with Store(out) as store:
        return sorted(store.call_ids())


def test_a_bad_item_fails_alone_naming_the_item(tmp_path, keyword_tagger):
    items = [STC3[0], {"foo": 1}, {"id": "7", "turns": "oops"}, {"id": "8", "turns": [], "annotations": "x"}, None, STC3[1]]
    src = tmp_path / "mixed.json"
    src.write_text(json.dumps(items))
    summary = import_transcripts([src], tmp_path / "out", NO_REPORT)
    assert summary.processed == 2 and summary.failed == 4
    reasons = [reason for _source, reason in summary.failures]
    assert all(reason.startswith(str(src)) and "\n" not in reason for reason in reasons)
    assert any("item 1: not an object with a 'turns' list" in r for r in reasons)
    assert any("item 3 (8): 'annotations' must be a list of objects" in r for r in reasons)
    assert _stored_ids(tmp_path / "out") == ["stc3-en-101", "stc3-en-102"]
    with pytest.raises(TranscriptError, match="item 1"):
        load_transcripts(src)  # the strict reader stops at the first bad item


def test_malformed_fields_are_named(tmp_path):
    src = tmp_path / "call.json"
    for item, reason in (
        ({"turns": [{"role": "agent", "text": "hi"}], "channels": "two"}, "'channels' must be a whole number"),
        ({"turns": [{"role": "agent", "text": "hi", "turn_index": "x"}]}, "turn 0: 'turn_index' must be a whole number"),
        ({"turns": [{"role": "agent", "text": "hi"}], "metadata": "str"}, "'metadata' must be an object"),
    ):
        src.write_text(json.dumps(item))
        with pytest.raises(TranscriptError, match=reason):
            load_transcripts(src)


def test_one_id_twice_fails_the_second_and_the_same_dialogue_twice_is_processed_once(tmp_path, keyword_tagger):
    changed = {**STC3[1], "turns": [{"sender": "customer", "utterances": ["Something else entirely."]}]}
    first, copy = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(STC3 + [changed]))
    copy.write_text(json.dumps(STC3))
    summary = import_transcripts([first, copy], tmp_path / "out", NO_REPORT)
    assert summary.processed == 2 and summary.duplicates == 2 and summary.failed == 1
    assert "stc3-en-102: another transcript with this id came first" in summary.failures[0][1]
    from pipeline.store import Store

    with Store(tmp_path / "out") as store:
        assert store.call_record("stc3-en-102")["turns"][0]["text"] == "Hello?"  # the first one is kept


def test_dialogues_without_ids_get_one_each(tmp_path, keyword_tagger):
    src = tmp_path / "noids.json"
    src.write_text(json.dumps([{k: v for k, v in d.items() if k != "id"} for d in STC3]))
    summary = import_transcripts([src], tmp_path / "out", NO_REPORT)
    assert summary.processed == 2
    assert _stored_ids(tmp_path / "out") == ["stc3-en-noids-0", "stc3-en-noids-1"]


def test_in_a_folder_broken_json_fails_and_other_json_is_passed_over(tmp_path, keyword_tagger, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "d.json").write_text(json.dumps(STC3))
    (folder / "broken.json").write_text('{"turns": [')
    (folder / "settings.json").write_text(json.dumps({"colour": "blue"}))
    summary = import_transcripts([folder], tmp_path / "out", NO_REPORT)
    assert summary.processed == 2 and summary.failed == 1
    assert "broken.json: not readable JSON" in summary.failures[0][1]
    assert "passed over 1 .json file(s) that are not transcripts (e.g. settings.json)" in capsys.readouterr().out


def test_an_out_that_is_a_file_is_a_usage_error(tmp_path, capsys):
    from pipeline.cli import main

    src = tmp_path / "d.json"
    src.write_text(json.dumps(STC3))
    assert main(["import", str(src), "--out", str(src), "--no-report"]) == 2
    assert "--out must be a directory" in capsys.readouterr().err


def test_sigterm_stops_an_import_cleanly_and_a_rerun_completes_it(tmp_path):
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time
    from pathlib import Path

    from pipeline.cli import main

    dialogues = [
        {"id": f"{d['id']}-{k}", "turns": [{**t, "utterances": [f"{u} (ticket {k})" for u in t["utterances"]]} for t in d["turns"]]}
        for k in range(750) for d in STC3
    ]
    src, out = tmp_path / "night.json", tmp_path / "out"
    src.write_text(json.dumps(dialogues))
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "import", str(src), "--out", str(out), "--no-report"],
                            cwd=root, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not list((out / "calls").glob("*.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert "run the same command again to resume" in output
    db = sqlite3.connect(out / "callpipe.sqlite")
    stored = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    assert 1 <= stored < 1500 and stored == len(list((out / "calls").glob("*.json")))
    assert json.loads(db.execute("SELECT summary_json FROM runs").fetchone()[0])["interrupted"] is True
    assert main(["import", str(src), "--out", str(out), "--no-report"]) == 0
    assert db.execute("SELECT COUNT(DISTINCT call_id), COUNT(*) FROM calls").fetchone() == (1500, 1500)
