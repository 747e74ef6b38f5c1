from pathlib import Path

from pipeline.inputs import collect_inputs, read_manifest

EXT = (".wav", ".flac")


def test_folders_are_searched_recursively_and_dirs_named_like_audio_reported(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.wav").write_bytes(b"x")
    (tmp_path / "a" / "y.flac").write_bytes(b"y")
    (tmp_path / "a" / "notes.txt").write_text("n")
    (tmp_path / "a" / "odd.wav").mkdir()
    inputs, problems = collect_inputs([tmp_path / "a", tmp_path / "missing.wav"], EXT)
    assert sorted(i.path.name for i in inputs) == ["x.wav", "y.flac"]
    reasons = sorted(p.reason for p in problems)
    assert any("odd.wav: is a directory" in r for r in reasons)
    assert any("missing.wav: file not found" in r for r in reasons)


def test_csv_manifest_keeps_metadata_and_reports_bad_rows_by_line(tmp_path):
    manifest = tmp_path / "calls.csv"
    manifest.write_text(
        "call_id,audio_path,agent_id,customer_id,start_time,agent_channel,language,deal_id\n"
        "c1,one.wav,ag7,cu1,2026-12-01T09:00:00,1,en,D-9\n"
        "c2,,ag7,cu2,,,,\n"
        "c3,three.wav,ag8,cu3,,left,,\n"
        "c4,/abs/four.wav,ag8,cu4,,,zh-CN,\n"
        "c5,five.wav,ag8,cu5,,,Klingon,\n"
    )
    inputs, problems = read_manifest(manifest)
    assert [i.call_id for i in inputs] == ["c1", "c4"]
    assert inputs[1].language == "zh"  # a regional code names the language Whisper knows
    first = inputs[0]
    assert first.path == tmp_path / "one.wav" and first.agent_channel == 1 and first.language == "en"
    assert first.metadata == {"agent_id": "ag7", "customer_id": "cu1", "start_time": "2026-12-01T09:00:00", "deal_id": "D-9"}
    assert inputs[1].path == Path("/abs/four.wav")
    assert [p.source for p in problems] == [f"{manifest}:3", f"{manifest}:4", f"{manifest}:6"]
    assert "audio_path is missing" in problems[0].reason and "line 3" in problems[0].reason
    assert "agent_channel must be a channel number" in problems[1].reason
    assert "unknown language 'Klingon'" in problems[2].reason


def test_jsonl_manifest_with_a_broken_line(tmp_path):
    manifest = tmp_path / "calls.jsonl"
    manifest.write_text('{"audio_path": "a.wav", "agent_id": "x"}\n{not json}\n\n[1, 2]\n{"audio_path": "b.wav", "customer_channel": 3, "agent_channel": 2}\n')
    inputs, problems = collect_inputs([manifest], EXT)
    assert [i.path.name for i in inputs] == ["a.wav", "b.wav"]
    assert inputs[1].agent_channel == 2 and inputs[1].customer_channel == 3
    assert [p.source.rsplit(":", 1)[1] for p in problems] == ["2", "4"]


def test_csv_manifest_without_audio_path_column(tmp_path):
    manifest = tmp_path / "bad.csv"
    manifest.write_text("file,agent\nx.wav,a\n")
    inputs, problems = read_manifest(manifest)
    assert inputs == [] and "audio_path" in problems[0].reason
