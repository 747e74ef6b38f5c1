"""`callpipe run` end to end on the real stereo call, with bad files beside it."""

import json
import re
import sqlite3

from pipeline.sequences import BETWEEN_TURNS_BASE


def test_batch_goes_on_past_bad_files_and_exits_nonzero(stereo_run):
    assert stereo_run["code"] == 1
    db = sqlite3.connect(stereo_run["out"] / "callpipe.sqlite")
    errors = dict(db.execute("SELECT source, reason FROM errors"))
    assert len(errors) == 2
    for source, reason in errors.items():
        assert source in reason and "\n" not in reason
    assert any("empty file" in r for r in errors.values())
    (calls,) = db.execute("SELECT COUNT(*) FROM calls").fetchone()
    assert calls == 1
    # No half-written call: every stored call has its analysis and events.
    assert db.execute("SELECT COUNT(*) FROM calls LEFT JOIN analyses USING (call_id) WHERE analyses.call_id IS NULL").fetchone()[0] == 0


def test_stereo_call_has_both_roles_in_time_order_agent_greets_first(stereo_run):
    out = stereo_run["out"]
    (json_path,) = (out / "calls").glob("*.json")
    call = json.loads(json_path.read_text())
    turns = call["turns"]
    roles = {t["role"] for t in turns}
    assert roles == {"agent", "customer"}
    starts = [t["start"] for t in turns]
    assert starts == sorted(starts)
    assert turns[0]["role"] == "agent"
    assert "thank you for calling" in turns[0]["text"].lower()
    # The customer introduces himself; his name is redacted before anything is stored.
    assert any(re.search(r"my (last )?name(’s|'s| is) \[name\]", t["text"].lower()) for t in turns if t["role"] == "customer")
    assert not any("jack" in t["text"].lower() for t in turns)
    # Every turn is tagged, and the call has an analysis with a score in range.
    assert all(t["tags"]["act"] in ("problem_stated", "solution_offered", "solution_confirmed", "other") for t in turns)
    analysis = call["analysis"]
    assert 0 <= analysis["efficiency_score"] <= 100
    assert set(analysis["talk_time"]) == {"agent", "customer"}
    assert analysis["handle_time"] > 240
    turn_events = [e for e in call["events"] if e["event_index"] < BETWEEN_TURNS_BASE]
    assert len(turn_events) == len(turns)


def test_run_is_recorded_with_config_models_and_summary(stereo_run):
    db = sqlite3.connect(stereo_run["out"] / "callpipe.sqlite")
    config, versions, summary = db.execute("SELECT config_json, model_versions_json, summary_json FROM runs").fetchone()
    assert json.loads(config)["asr"]["model"] == "embedded"
    assert "tiny.en" in json.loads(versions)["asr"]
    summary = json.loads(summary)
    assert summary["processed"] == 1 and summary["failed"] == 2
    assert summary["audio_seconds"] > 240 and summary["real_time_factor"] > 0


def test_report_pages_list_the_call_and_show_its_transcript(stereo_run):
    report = stereo_run["out"] / "report"
    index = (report / "index.html").read_text()
    (page,) = (report / "calls").glob("*.html")
    assert "calls" in index
    # The index's rows are data loaded by the page, so thousands of calls never make one huge page.
    assert f'calls/{page.name}' in (report / "data" / "calls.js").read_text()
    html = page.read_text()
    assert 'class="turn agent"' in html and 'class="turn customer"' in html
    assert "<audio" in html and "aws_lca_call40_stereo.flac" in html


def test_mandarin_call_is_heard_and_tagged_as_mandarin(tmp_path):
    from pipeline.cli import main

    from .conftest import MANDARIN
    from .test_asr_backends import _needs_multilingual

    _needs_multilingual()
    out = tmp_path / "out"
    assert main(["run", str(MANDARIN), "--out", str(out)]) == 0
    (json_path,) = (out / "calls").glob("*.json")
    call = json.loads(json_path.read_text())
    assert call["language"] == "zh"
    text = "".join(t["text"] for t in call["turns"])
    assert "广州" in text and " " not in text
    assert all(t["tags"]["act"] in ("problem_stated", "solution_offered", "solution_confirmed", "other") for t in call["turns"])
    db = sqlite3.connect(out / "callpipe.sqlite")
    (versions,) = db.execute("SELECT model_versions_json FROM runs").fetchone()
    assert "acts-zh" in versions and "base" in json.loads(versions)["asr"]
