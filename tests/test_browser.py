"""The review pages driven in real headless Chromium, as a reviewer uses them.

`callpipe serve` serves a real run of the shipped stereo call (the session's `stereo_run`)
and a store of synthetic calls (enough for several pages of the calls index). One
browser serves the whole session; a failing test leaves a screenshot in its tmp_path.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.report import write_report
from pipeline.report.server import make_server
from pipeline.store import Store

from .test_report import SCRIPT, build_store

CHROMIUM = Path("/usr/bin/chromium")
# As root, in a container, with no network: no sandbox, no GPU, no calls home.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--mute-audio"]
SYNTHETIC_CALLS = 130


def _unavailable(reason: str) -> None:
    # `make test` installs both; in CI a missing browser is a broken set-up, not a reason to skip.
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: the browser tests must run in CI (make test installs Chromium and Playwright)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextmanager
def _serving(out_dir: Path):
    server = make_server(out_dir, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def real_site(stereo_run):
    with _serving(stereo_run["out"]) as url:
        yield url


@pytest.fixture(scope="session")
def synthetic_site(tmp_path_factory):
    out = build_store(tmp_path_factory.mktemp("browser_store"), SYNTHETIC_CALLS, cross_call=False)
    with Store(out) as store:
        write_report(store, out)
    with _serving(out) as url:
        yield url


@pytest.fixture()
def page(browser, request, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    # A dialog would mean page data ran as script.
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    failed_before = request.session.testsfailed
    yield page
    # The call phase's failure is counted before fixtures are torn down.
    if request.session.testsfailed > failed_before:
        shot = tmp_path / f"{request.node.name}.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failing page: {shot}")
    context.close()
    assert not problems, problems


def _rows(page):
    return page.locator("#calls tbody tr")


def test_index_of_a_real_run_filters_searches_and_sorts(page, real_site):
    from playwright.sync_api import expect

    page.goto(real_site)
    expect(_rows(page)).to_have_count(1)
    expect(page.locator("#status")).to_contain_text("1 of 1 calls")
    state = _rows(page).locator("td.issue_state").inner_text()

    page.get_by_label("Filter agent: contains").fill("nobody")
    expect(_rows(page)).to_have_text(["No calls match."])
    page.get_by_role("button", name="Clear filters").click()
    expect(_rows(page)).to_have_count(1)
    page.get_by_label("Filter issue state").select_option(label=state)
    expect(page.locator("#calls tbody tr td.call_id")).to_have_count(1)

    # The status names the query only once its results are drawn: wait for it before counting.
    search = page.get_by_label("Search transcripts")
    search.fill("dealership")
    expect(page.locator("#status")).to_contain_text("1 of 1 calls whose transcript has “dealership”")
    expect(page.locator("#calls tbody td.call_id")).to_have_count(1)
    # Nobody says "zebra"; the customer's name ("Jack") is said, but only its redaction is shown.
    for absent in ("zebra", "jack"):
        search.fill(absent)
        expect(page.locator("#status")).to_contain_text(f"0 of 1 calls whose transcript has “{absent}”")
        expect(_rows(page)).to_have_text(["No calls match."])
    search.fill("")

    score = page.locator("#calls thead th", has=page.get_by_role("button", name="Score", exact=True))
    score.get_by_role("button").click()
    expect(score).to_have_attribute("aria-sort", "ascending")
    score.get_by_role("button").click()
    expect(score).to_have_attribute("aria-sort", "descending")
    assert "sort=efficiency_score" in page.url


def test_index_pages_sorts_and_filters_many_calls(page, synthetic_site):
    from playwright.sync_api import expect

    page.goto(synthetic_site)
    expect(page.locator("#status")).to_contain_text(f"{SYNTHETIC_CALLS} of {SYNTHETIC_CALLS} calls, showing 1–50")
    expect(_rows(page)).to_have_count(50)
    page.get_by_role("button", name="Next →").click()
    page.get_by_role("button", name="Next →").click()
    expect(page.locator("#pageinfo")).to_have_text("Page 3 of 3")
    expect(_rows(page)).to_have_count(SYNTHETIC_CALLS - 100)
    expect(page.get_by_role("button", name="Next →")).to_be_disabled()

    page.get_by_role("button", name="Score", exact=True).click()
    scores = [float(s) for s in page.locator("#calls tbody td.efficiency_score").all_inner_texts()]
    assert scores == sorted(scores) and len(scores) == 50
    expect(page.locator("#pageinfo")).to_have_text("Page 1 of 3")

    refunds = [i for i in range(SYNTHETIC_CALLS) if i % 7 == 0]
    page.get_by_label("Search transcripts").fill("refun")
    expect(page.locator("#status")).to_contain_text(f"{len(refunds)} of {SYNTHETIC_CALLS} calls whose transcript has “refun”")
    page.get_by_label("Filter agent: contains").fill("ana")
    both = [i for i in refunds if i % 5 == 0]
    expect(page.locator("#calls tbody td.call_id")).to_have_count(len(both))
    # A filtered view is a link a reviewer can share.
    shared = page.url
    page.goto("about:blank")
    page.goto(shared)
    expect(page.locator("#calls tbody td.call_id")).to_have_count(len(both))
    page.get_by_role("button", name="Clear filters").click()

    page.get_by_label("Filter flags").select_option(label="PII found")
    expect(page.locator("#calls tbody td.call_id")).to_have_text(["call-00001"])
    page.get_by_role("button", name="Clear filters").click()
    page.get_by_label("Duration from (minutes)").fill("0.6")
    durations = page.locator("#calls tbody td.duration").all_inner_texts()
    assert durations and all(int(m) * 60 + int(s) >= 36 for m, s in (d.split(":") for d in durations))
    # Markup in data shows as text.
    page.get_by_role("button", name="Clear filters").click()
    expect(page.locator("#calls tbody td.agent_id", has_text="<b>eve</b>").first).to_be_visible()


def test_clicking_a_turn_plays_the_call_from_that_turn(page, real_site):
    from playwright.sync_api import expect

    page.goto(real_site)
    page.locator("#calls tbody td.call_id a").click()
    expect(page.locator("#transcript .turn.customer").first).to_be_visible()
    # The audio comes from the server (not copied into the report) and can be read.
    page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=15_000)
    assert page.evaluate("document.getElementById('player').duration") > 240

    turn = page.locator("#transcript .turn.customer").nth(2)
    start = float(turn.get_attribute("data-start"))
    assert start > 10
    turn.locator(".text").click()
    page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - {start}) < 1.5", timeout=10_000)
    expect(turn).to_have_class("turn customer playing")
    expect(page.locator("#transcript .turn.playing")).to_have_count(1)

    # An event on the timeline seeks too, and the highlight follows.
    event = page.locator("#timeline .lane-agent .ev").last
    at = float(event.get_attribute("data-start"))
    event.click()
    page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - {at}) < 1.5", timeout=10_000)
    expect(page.locator(f"#transcript .turn.agent.playing[data-start='{event.get_attribute('data-start')}']")).to_have_count(1)


def test_agent_page_shows_its_plot(page, real_site):
    from playwright.sync_api import expect

    page.goto(real_site + "agents.html")
    page.locator("#agents tbody a").first.click()
    plot = page.locator("#agent-plot")
    expect(plot).to_be_visible()
    page.wait_for_function("document.getElementById('agent-plot').complete")
    assert page.evaluate("document.getElementById('agent-plot').naturalWidth") > 300
    expect(page.locator("#scorecard")).to_contain_text("Whole team")


def test_transcript_markup_renders_as_text(page, synthetic_site):
    from playwright.sync_api import expect

    page.goto(synthetic_site + "calls/call-00002.html?q=typed")
    text = page.locator("#transcript .turn").last.locator(".text")
    expect(text).to_contain_text(SCRIPT)
    expect(text.locator("mark")).to_have_text(["typed"])
    assert page.locator("#transcript script, #transcript img").count() == 0
