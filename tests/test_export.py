"""Exports from the store: per-call JSON, CSV, Parquet, SRT and WebVTT."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.export import export, safe_name, shareable_record, subtitles
from pipeline.store import Store

from .test_report import CARD, SCRIPT, build_store


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = build_store(tmp_path_factory.mktemp("export"), 6)
    assert main(["export", str(out), "--format", "all"]) == 0
    return out / "export"


def test_all_formats_are_written(exported):
    names = {p.relative_to(exported).as_posix() for p in exported.rglob("*") if p.is_file()}
    assert {"turns.csv", "analyses.csv", "turns.parquet", "analyses.parquet"} <= names
    for i in range(6):
        assert {f"calls/call-{i:05d}.json", f"srt/call-{i:05d}.srt", f"vtt/call-{i:05d}.vtt"} <= names
    assert not [n for n in names if n.endswith(".tmp")]


def test_csv_and_parquet_hold_the_same_rows(exported):
    with open(exported / "turns.csv", encoding="utf-8", newline="") as fh:
        turns = list(csv.DictReader(fh))
    table = pq.read_table(exported / "turns.parquet").to_pylist()
    assert len(turns) == len(table) == sum(1 for _ in turns)
    assert [r["text"] for r in turns] == [r["text"] for r in table]
    first = table[1]
    assert first["call_id"] == "call-00000" and first["role"] == "customer" and first["act"] == "problem_stated"
    assert first["intent"] == "billing" and first["sentiment"] == pytest.approx(-1.0)
    assert isinstance(first["start"], float) and first["end"] > first["start"]
    analyses = pq.read_table(exported / "analyses.parquet").to_pylist()
    assert [a["call_id"] for a in analyses] == [f"call-{i:05d}" for i in range(6)]
    call = analyses[0]
    assert call["agent_id"] == "ana" and call["date"] == "2024-05-01 08:15" and call["issue_state"] == "solution_offered"
    assert 0 <= call["efficiency_score"] <= 100 and call["score_resolution"] == pytest.approx(0.6)
    with open(exported / "analyses.csv", encoding="utf-8", newline="") as fh:
        assert [r["call_id"] for r in csv.DictReader(fh)] == [a["call_id"] for a in analyses]


def test_exports_carry_redacted_text_only(exported):
    for path in exported.rglob("*"):
        if path.is_file():
            assert CARD.encode() not in path.read_bytes(), path
    record = json.loads((exported / "calls" / "call-00001.json").read_text())
    redacted = record["turns"][-1]
    assert redacted["text"] == "my card is [CREDIT_CARD]" and redacted["words"] == []
    assert redacted["tags"]["entities"] == [{"type": "CREDIT_CARD", "start": 11, "end": 30}]
    assert "[CREDIT_CARD]" in (exported / "srt" / "call-00001.srt").read_text()


def test_srt_and_vtt_cues_follow_the_turns(exported):
    srt = (exported / "srt" / "call-00000.srt").read_text()
    assert srt.startswith("1\n00:00:00,000 --> 00:00:04,000\nAgent: Thank you for calling, how can I help?\n\n2\n00:00:05,000 --> ")
    vtt = (exported / "vtt" / "call-00000.vtt").read_text()
    assert vtt.startswith("WEBVTT\n\n1\n00:00:00.000 --> 00:00:04.000\n<v Agent>Thank you for calling")
    assert vtt.count(" --> ") == srt.count(" --> ") == 3
    # Markup in a transcript is text in a WebVTT cue, not a tag.
    markup = (exported / "vtt" / "call-00002.vtt").read_text()
    assert "&lt;script&gt;" in markup and SCRIPT not in markup


def test_subtitle_times_past_an_hour_and_odd_text():
    record = {"turns": [{"role": "customer", "start": 3723.4567, "end": 3725.0, "text": "a\n\nb --> c", "tags": {}}]}
    assert subtitles(record, "srt") == "1\n01:02:03,457 --> 01:02:05,000\nCustomer: a b -> c\n"
    assert subtitles(record, "vtt") == "WEBVTT\n\n1\n01:02:03.457 --> 01:02:05.000\n<v Customer>a b --&gt; c\n"


def test_call_ids_that_are_not_plain_names_get_safe_file_names():
    assert safe_name("call-001.a_b") == "call-001.a_b"
    for odd in ("../../etc/passwd", "a/b", ".hidden", "", "x" * 300, "<b>"):
        name = safe_name(odd)
        assert "/" not in name and not name.startswith(".") and 0 < len(name) <= 121, odd
    assert safe_name("a/b") != safe_name("a_b")


def test_shareable_record_leaves_unredacted_turns_alone():
    record = {"turns": [{"text": "hello", "words": [{"text": "hello"}], "tags": {"act": "other"}}]}
    assert shareable_record(record) == record


def test_export_one_format_to_another_folder(tmp_path):
    out = build_store(tmp_path / "run", 2)
    with Store(out) as store:
        written = export(store, tmp_path / "elsewhere", ["vtt"])
    assert sorted(p.name for p in written) == ["call-00000.vtt", "call-00001.vtt"]
    with pytest.raises(ValueError):
        with Store(out) as store:
            export(store, tmp_path / "x", ["docx"])


def test_export_command_refuses_a_folder_without_a_store(tmp_path, capsys):
    assert main(["export", str(tmp_path)]) == 2
    assert "no callpipe.sqlite" in capsys.readouterr().err


def test_export_from_the_real_run(stereo_run):
    out = stereo_run["out"]
    assert main(["export", str(out), "--format", "srt", "--format", "csv"]) == 0
    (srt,) = (out / "export" / "srt").glob("*.srt")
    assert "Agent: " in srt.read_text() and "Customer: " in srt.read_text()
    with open(out / "export" / "turns.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {r["role"] for r in rows} == {"agent", "customer"}
