"""Review pages from a store built directly: escaping, redaction, many calls, audio, serving."""

from __future__ import annotations

import dataclasses
import http.client
import json
import re
import threading
from pathlib import Path

import pytest

from pipeline.config import Config
from pipeline.crosscall import refresh as refresh_cross_call
from pipeline.export import safe_name
from pipeline.records import Call, Turn, TurnTags
from pipeline.report import pages, write_report
from pipeline.report.search import SearchIndex, shard_file, tokens
from pipeline.report.server import make_server
from pipeline.scoring import analyze_call
from pipeline.sequences import call_events, frequent_ngrams
from pipeline.store import Store

AGENTS = ("ana", "ben", "chidi", "dora", "<b>eve</b>")
CARD = "4111 1111 1111 1111"
SCRIPT = "<script>alert('x')</script>"


@dataclasses.dataclass(frozen=True)
class RichTags(TurnTags):
    """Tags as tagging writes them once sentiment and PII redaction are on."""

    sentiment: float | None = None
    entities: tuple = ()
    redacted_text: str | None = None
    pii_found: bool = False


def _turns_for(i: int) -> list[tuple[str, str, RichTags]]:
    """(role, text, tags) for synthetic call i; words vary with i so search and filters have something to find."""
    topic = "refund" if i % 7 == 0 else ("router" if i % 3 == 0 else "invoice")
    mood = ((i % 11) - 5) / 5
    turns = [
        ("agent", "Thank you for calling, how can I help?", RichTags(act="other")),
        ("customer", f"My {topic} is a problem since Monday.",
         RichTags(act="problem_stated", intent="billing" if topic != "router" else "technical", sentiment=mood)),
        ("agent", f"I can fix the {topic} for you today.", RichTags(act="solution_offered")),
    ]
    if i % 4:
        turns.append(("customer", "Great, that works, thanks.", RichTags(act="solution_confirmed", sentiment=min(1.0, mood + 0.5))))
    if i == 1:
        turns.append(("customer", f"my card is {CARD}", RichTags(
            act="other", sentiment=0.0, pii_found=True, redacted_text="my card is [CREDIT_CARD]",
            entities=({"type": "CREDIT_CARD", "text": CARD, "start": 11, "end": 30},))))
    if i == 2:
        turns.append(("customer", f"I typed {SCRIPT} & <img src=x onerror=alert(1)>", RichTags(act="other", sentiment=-0.2)))
    return turns


def build_store(out: Path, n: int, audio: Path | None = None, cross_call: bool = True) -> Path:
    """A store of n synthetic calls, analysed by the real scoring, sequence and (unless
    ``cross_call`` is false) cross-call analytics code."""
    cfg = Config()
    with Store(out) as store:
        store.conn.execute("PRAGMA synchronous = OFF")  # a test store need not survive a power cut
        run_id = store.start_run(cfg.to_dict(), {})
        for i in range(n):
            at, turns, tags = 0.0, [], []
            for k, (role, text, tag) in enumerate(_turns_for(i)):
                turns.append(Turn(index=k, role=role, start=at, end=at + 4.0, text=text, channel=0 if role == "agent" else 1))
                tags.append(tag)
                at += 5.0 + (i % 5)
            call = Call(
                call_id=f"call-{i:05d}", source=str(audio or out / "audio" / f"call-{i:05d}.wav"), duration=at + 2.0,
                channels=2, language="en" if i % 9 else "es", turns=tuple(turns), audio_sha256=f"{i:064x}",
                metadata={"agent_id": AGENTS[i % len(AGENTS)], "customer_id": f"cust-{i % 37}",
                          "start_time": f"2024-05-{1 + i % 28:02d}T{8 + i % 10:02d}:15:00"},
            )
            analysis = analyze_call(call, tags, cfg.scoring)
            store.save_call(run_id, call, tags, analysis, call_events(call.turns, tags, cfg))
        store.save_patterns(frequent_ngrams(store.event_sequences(), 2, 3, 20))
        if cross_call:
            refresh_cross_call(store, cfg)
        store.finish_run(run_id, {"processed": n, "failed": 0}, {})
    return out


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    out = build_store(tmp_path_factory.mktemp("small"), 12)
    with Store(out) as store:
        write_report(store, out)
    return out


TEXT_FILES = (".html", ".js", ".svg", ".json", ".csv", ".srt", ".vtt")


def _all_text(folder: Path) -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in folder.rglob("*") if p.is_file() and p.suffix in TEXT_FILES}


def test_every_page_is_written_and_linked(small_report):
    report = small_report / "report"
    for name in ("index.html", "agents.html", "patterns.html", "data/calls.js", "static/index.js", "static/call.js",
                 "static/common.js", "static/report.css", "plots/intents.svg", "plots/agents.svg"):
        assert (report / name).is_file(), name
    assert len(list((report / "calls").glob("*.html"))) == 12
    assert len(list((report / "agents").glob("*.html"))) == len(AGENTS)
    assert len(list((report / "plots").glob("agent-*.svg"))) == len(AGENTS)
    patterns = (report / "patterns.html").read_text()
    assert 'id="patterns"' in patterns and "problem stated" in patterns
    # Nothing is fetched from elsewhere: the pages work offline.
    for path, text in _all_text(report).items():
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), path


def test_transcript_markup_is_escaped_everywhere(small_report):
    report = small_report / "report"
    call = (report / "calls" / "call-00002.html").read_text()
    assert "I typed &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in call
    for path, text in _all_text(report).items():
        assert "<script>alert" not in text and "<img src=x" not in text, path
    # Agent ids are data too: escaped in pages, and their page's file name is made safe.
    agents = (report / "agents.html").read_text()
    assert "&lt;b&gt;eve&lt;/b&gt;" in agents and "<b>eve</b>" not in agents
    assert (report / "agents" / f"{safe_name('<b>eve</b>')}.html").is_file()


def test_redacted_text_is_shown_and_the_original_is_nowhere(small_report):
    report = small_report / "report"
    call = (report / "calls" / "call-00001.html").read_text()
    assert "my card is [CREDIT_CARD]" in call
    assert 'class="tag entity"' in call and "CREDIT_CARD" in call
    assert "flag-pii_found" in call
    for path, text in _all_text(small_report).items():
        assert CARD not in text, path


def test_call_page_has_player_timeline_score_and_turn_details(small_report):
    html = (small_report / "report" / "calls" / "call-00003.html").read_text()
    assert '<audio id="player"' in html
    # Audio is referenced, not copied: the served path first, then the original file.
    assert '<source src="../audio/call-00003.wav">' in html and 'src="../audio/call-00003.wav"' in html
    assert (small_report / "report" / "audio").exists() is False
    assert html.count('class="turn agent"') == 2 and html.count('class="turn customer"') == 2
    assert "sentiment " in html and "intent: technical" in html
    assert html.count('class="ev act-') == 4 and 'class="playhead"' in html
    assert 'id="breakdown"' in html and "talk balance" in html


def test_index_stays_small_with_thousands_of_calls(tmp_path):
    n = 1000
    out = build_store(tmp_path, n, cross_call=False)
    with Store(out) as store:
        write_report(store, out)
    report = out / "report"
    data = (report / "data" / "calls.js").read_text()
    table = json.loads(data[data.index("{"): data.rindex("}") + 1])
    assert len(table["rows"]) == n
    assert [c["key"] for c in table["columns"]] == [k for k, _, _ in pages.INDEX_COLUMNS]
    sizes = {p.relative_to(report).as_posix(): p.stat().st_size for p in report.rglob("*") if p.is_file()}
    assert sizes["index.html"] < 20_000
    # The table's data grows by under 200 bytes a call (10,000 calls: under 2 MB); every other file stays small.
    assert sizes.pop("data/calls.js") < 200 * n
    assert max(sizes.values()) < 200_000, max(sizes.items(), key=lambda kv: kv[1])
    # The search shard for "re..." lists exactly the calls that mention a refund.
    shard = (report / "search" / shard_file("re")).read_text()
    words = json.loads(shard[shard.index("] = ") + 4: shard.rindex(";")])
    assert words["refund"] == [i for i in range(n) if i % 7 == 0]


def test_pages_of_calls_no_longer_stored_are_removed(tmp_path):
    out = build_store(tmp_path, 2, cross_call=False)
    with Store(out) as store:
        write_report(store, out)
        store.conn.execute("DELETE FROM calls WHERE call_id = 'call-00001'")
        store.conn.commit()
        write_report(store, out)
    report = out / "report"
    assert [p.name for p in (report / "calls").glob("*.html")] == ["call-00000.html"]
    assert [p.name for p in (report / "agents").glob("*.html")] == ["ana.html"]
    assert sorted(p.name for p in (report / "plots").glob("agent-*.svg")) == ["agent-ana.svg"]


def test_search_tokens_split_words_and_han_characters():
    assert tokens("Refund, please: 2 ROUTERS!") == ["refund", "please", "2", "routers"]
    assert tokens("退款 refund") == ["退", "款", "refund"]
    index = SearchIndex()
    index.add(0, ["refund now"])
    index.add(1, ["Refund"])
    assert index.shards["re"] == {"refund": [0, 1]}


def test_missing_analytics_show_not_available(small_report, monkeypatch, tmp_path):
    from pipeline.report import analytics

    monkeypatch.setattr(analytics, "_optional", lambda name: None)
    monkeypatch.setattr(Store, "drivers", None, raising=False)
    out = build_store(tmp_path, 3)
    with Store(out) as store:
        write_report(store, out)
    report = out / "report"
    assert "Call drivers (topics with keywords): not available" in (report / "patterns.html").read_text()
    assert "Suggested next responses: not available" in (report / "calls" / "call-00000.html").read_text()
    agent = next((report / "agents").glob("*.html")).read_text()
    assert "Where this agent differs from the team" in agent and "Not available." in agent


def test_copy_audio_puts_the_audio_beside_the_pages(tmp_path):
    audio = tmp_path / "in" / "call one.wav"
    audio.parent.mkdir()
    audio.write_bytes(b"RIFF" + bytes(100))
    out = build_store(tmp_path / "out", 2, audio=audio, cross_call=False)
    with Store(out) as store:
        write_report(store, out)
        plain = (out / "report" / "calls" / "call-00000.html").read_text()
        # Not copied: the original is referenced relative to the page, quoted for the URL.
        assert 'src="../../../in/call%20one.wav"' in plain
        write_report(store, out, copy_audio=True)
    copied = out / "report" / "audio" / "call-00000.wav"
    assert copied.read_bytes() == audio.read_bytes()
    page = (out / "report" / "calls" / "call-00000.html").read_text()
    assert '<source src="../audio/call-00000.wav">' in page and "call%20one" not in page


def test_a_text_transcript_gets_no_player_and_no_times(tmp_path):
    cfg = Config()
    turns = (Turn(0, "customer", 0.0, 0.0, "My order never came."), Turn(1, "agent", 0.0, 0.0, "I will resend it today."))
    tags = [RichTags(act="problem_stated", intent="delivery"), RichTags(act="solution_offered")]
    call = Call("chat-1", str(tmp_path / "chats.json"), 0.0, 0, "en", turns, metadata={"modality": "text"})
    with Store(tmp_path) as store:
        run_id = store.start_run(cfg.to_dict(), {})
        store.save_call(run_id, call, tags, analyze_call(call, tags, cfg.scoring), call_events(call.turns, tags))
        write_report(store, tmp_path)
    html = (tmp_path / "report" / "calls" / "chat-1.html").read_text()
    assert "<audio" not in html and 'class="seek"' not in html
    assert '<span class="turn-no">#2</span>' in html and "I will resend it today." in html


# --- callpipe serve ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("served")
    audio = tmp_path / "call.wav"
    audio.write_bytes(bytes(range(256)) * 4)
    out = build_store(tmp_path / "out", 2, audio=audio, cross_call=False)
    with Store(out) as store:
        write_report(store, out)
    server = make_server(out, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], audio.read_bytes()
    server.shutdown()
    server.server_close()


def _get(port: int, path: str, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_serve_answers_pages_and_audio_with_byte_ranges(served):
    port, audio = served
    status, headers, body = _get(port, "/")
    assert status == 200 and b"callpipe" in body and headers["Content-Type"].startswith("text/html")
    status, headers, body = _get(port, "/audio/call-00001.wav")
    assert status == 200 and body == audio and headers["Accept-Ranges"] == "bytes"
    # Seeking in the player asks for a byte range.
    status, headers, body = _get(port, "/audio/call-00001.wav", {"Range": "bytes=100-199"})
    assert status == 206 and body == audio[100:200] and headers["Content-Range"] == f"bytes 100-199/{len(audio)}"
    status, _, body = _get(port, "/audio/call-00001.wav", {"Range": "bytes=-24"})
    assert status == 206 and body == audio[-24:]
    assert _get(port, "/audio/call-00001.wav", {"Range": "bytes=5000-"})[0] == 416


def test_serve_gives_nothing_outside_the_report_but_the_calls_audio(served):
    port, _ = served
    for path in ("/../callpipe.sqlite", "/%2e%2e/callpipe.sqlite", "/audio/../../callpipe.sqlite", "/audio/nope.wav", "/audio/"):
        assert _get(port, path)[0] == 404, path
