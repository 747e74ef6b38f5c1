"""Sales forecasts: the three methods, loading, breakdowns, backtest, deal risk and the CLI."""

from __future__ import annotations

import json
from datetime import date

import pytest

from pipeline.cli import main
from pipeline.config import ConfigError, ForecastConfig, load_config, parse_override
from pipeline.forecast import (
    Deal,
    ForecastError,
    backtest,
    coverage,
    deal_risk,
    forecast,
    format_forecast,
    load_deals,
    parse_amount,
    parse_period,
    run_backtest,
    run_forecast,
    stage_rates,
)

M = 1_000_000
HEADER = "opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,close_value"

# A funnel with four stages and fixed win rates, as in the seed's picture.
FUNNEL = ForecastConfig(
    open_stages=("Prospecting", "Qualified", "Proposal", "Negotiation"),
    engaged_stage="",
    win_rates={"Prospecting": 0.1, "Qualified": 0.2, "Proposal": 0.4, "Negotiation": 0.6},
)
Q3 = parse_period("2017-Q3")


def deal(id: str, stage: str, amount: float, agent: str = "ann", close: date | None = None, account: str = "") -> Deal:
    return Deal(id, stage, "open", float(amount), "close_value", agent=agent, close_date=close, account=account)


def rates(cfg: ForecastConfig = FUNNEL):
    return stage_rates([], cfg)


def write(path, *rows: str, header: str = HEADER):
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


# --- the seed's worked example ---------------------------------------------------------------

def test_weighted_12m_against_10m_target_is_on_track():
    deals = [deal("p", "Prospecting", 20 * M), deal("r", "Proposal", 10 * M), deal("n", "Negotiation", 10 * M)]
    result = forecast(deals, Q3, 10 * M, rates(), stage_order=FUNNEL.open_stages)
    assert result.weighted == pytest.approx(12 * M)
    assert {s.stage: s.weighted for s in result.stages} == pytest.approx({"Prospecting": 2 * M, "Proposal": 4 * M, "Negotiation": 6 * M})
    assert result.weighted >= result.target
    assert not result.coverage.thin  # 40M is 4x the target
    assert "on track" in format_forecast(result)


def test_coverage_rule_needs_30m_for_10m_target():
    thin = coverage(26 * M, 10 * M)
    assert thin.required == pytest.approx(30 * M)
    assert thin.ratio == pytest.approx(2.6)
    assert thin.thin and thin.shortfall == pytest.approx(4 * M)
    enough = coverage(30 * M, 10 * M)
    assert not enough.thin and enough.shortfall == 0
    assert coverage(30 * M, 10 * M, rule=4.0).shortfall == pytest.approx(10 * M)


def test_commit_6m_plus_20m_weighted_to_6m_is_12m():
    deals = [
        deal("c1", "Prospecting", 4 * M), deal("c2", "Qualified", 2 * M),  # committed: 6M, early stages
        deal("a", "Prospecting", 10 * M), deal("b", "Proposal", 5 * M), deal("c", "Negotiation", 5 * M),  # 20M -> 1 + 2 + 3 = 6M
    ]
    result = forecast(deals, Q3, 10 * M, rates(), stage_order=FUNNEL.open_stages, committed={"c1", "c2"})
    assert result.committed == pytest.approx(6 * M)
    assert result.commit == pytest.approx(12 * M)
    assert result.weighted == pytest.approx(6 * M + 0.4 * M + 0.4 * M)  # without commits the two early deals weigh little
    assert result.committed_ids == ("c1", "c2")
    text = format_forecast(result)
    assert "WARNING pipeline too thin" in text and "4,000,000 more pipeline needed" in text  # 26M < 30M


# --- loading and win rates -------------------------------------------------------------------

def test_learned_win_rates_count_the_stage_deals_had_reached(tmp_path):
    csv = write(
        tmp_path / "p.csv",
        "w1,ann,P,acme,Won,2017-01-02,2017-02-01,100",
        "w2,ann,P,acme,Won,2017-01-02,2017-02-01,100",
        "w3,bob,P,acme,Won,2017-01-02,2017-02-01,100",
        "l1,bob,P,acme,Lost,2017-01-02,2017-02-01,0",
        "l2,bob,P,acme,Lost,,2017-02-01,0",  # lost before it was ever engaged
        "o1,ann,P,acme,Engaging,2017-03-01,,150",
    )
    table = load_deals(csv, ForecastConfig(), {"p": 10.0})
    learned = stage_rates(table.deals, ForecastConfig())
    assert (learned["Prospecting"].won, learned["Prospecting"].sample) == (3, 5)
    assert learned["Prospecting"].rate == pytest.approx(0.6)
    assert (learned["Engaging"].won, learned["Engaging"].sample) == (3, 4)
    assert learned["Engaging"].rate == pytest.approx(0.75)
    result = run_forecast(csv, ForecastConfig(), target="100", period="2017-Q3", products_file=write(tmp_path / "pr.csv", "P,10", header="product,sales_price"))
    assert result.weighted == pytest.approx(150 * 0.75)
    assert "learned: 3 won / 4 closed" in format_forecast(result)
    fixed = stage_rates(table.deals, ForecastConfig(win_rates={"Engaging": 0.3}))
    assert fixed["Engaging"].source == "config" and fixed["Engaging"].rate == 0.3
    assert fixed["Prospecting"].source == "learned"


def test_a_stage_with_no_history_and_no_config_is_an_error():
    with pytest.raises(ForecastError, match="no win rate for stage 'Engaging'.*forecast.win_rates"):
        forecast([deal("a", "Engaging", 10)], Q3, 10, stage_rates([], ForecastConfig()), stage_order=("Prospecting", "Engaging"))


def test_bad_rows_are_reported_with_line_numbers_and_excluded(tmp_path):
    csv = write(
        tmp_path / "p.csv",
        "a,ann,P,acme,Engaging,2017-01-02,,100",      # line 2: good
        "b,ann,Unknown,acme,Engaging,2017-01-02,,",   # line 3: no amount and no list price
        "c,ann,P,acme,Closed,2017-01-02,,100",        # line 4: unknown stage
        "d,ann,P,acme,Engaging,2017-13-45,,100",      # line 5: unparsable date
        "e,ann,P,acme,Engaging,2017-01-02,,lots",     # line 6: unparsable amount
        "a,ann,P,acme,Engaging,2017-01-02,,100",      # line 7: duplicate id
        "f,ann,P,acme,Won,2017-01-02,2017-02-01,50",  # line 8: good, history
        "g,ann,P,acme,Lost,2017-01-02,2017-02-01,0",  # line 9: good, history
    )
    table = load_deals(csv, ForecastConfig(), {"p": 10.0})
    assert [(b.line, b.reason.split(" ")[0]) for b in table.bad_rows] == [(3, "no"), (4, "unknown"), (5, "unparsable"), (6, "unparsable"), (7, "duplicate")]
    assert "'Closed'" in table.bad_rows[1].reason and "engage_date" in table.bad_rows[2].reason
    assert {d.id for d in table.deals} == {"a", "f", "g"}
    result = run_forecast(csv, ForecastConfig(), target="100", period="2017-Q3", products_file=write(tmp_path / "pr.csv", "P,10", header="product,sales_price"))
    assert result.pipeline == pytest.approx(100)  # only deal a
    assert len(result.bad_rows) == 5
    assert "line 4: unknown stage 'Closed'" in format_forecast(result)


def test_amount_falls_back_to_list_price_and_lost_zero_is_not_the_stake(tmp_path):
    csv = write(
        tmp_path / "p.csv",
        "a,ann,GTXPro,acme,Engaging,2017-01-02,,",      # priced from 'GTX Pro'
        "b,ann,GTX Pro,acme,Lost,2017-01-02,2017-02-01,0",
        "c,ann,GTX Pro,acme,Won,2017-01-02,2017-02-01,4500",
    )
    table = load_deals(csv, ForecastConfig(), {"gtxpro": 4821.0})
    by_id = {d.id: d for d in table.deals}
    assert (by_id["a"].amount, by_id["a"].amount_source) == (4821.0, "list price")
    assert (by_id["b"].amount, by_id["b"].close_value) == (4821.0, 0.0)
    assert (by_id["c"].amount, by_id["c"].amount_source) == (4500.0, "close_value")


def test_deals_closing_after_the_period_are_excluded_and_listed():
    deals = [
        deal("in", "Proposal", 100, close=date(2017, 9, 30)),
        deal("none", "Proposal", 100),
        deal("old", "Proposal", 100, close=date(2017, 6, 1)),  # overdue: still this period's business
        deal("next", "Negotiation", 1000, close=date(2017, 10, 1)),
    ]
    result = forecast(deals, Q3, 1000, rates(), stage_order=FUNNEL.open_stages, committed={"next"})
    assert result.pipeline == pytest.approx(300)
    assert result.weighted == pytest.approx(120)
    assert [d.id for d in result.later] == ["next"]
    assert result.later_weighted == pytest.approx(600)
    assert result.overdue == 1
    assert result.commit_not_counted == (("next", "closes after the period"),)
    assert "expected to close after 2017-Q3: 1 deals" in format_forecast(result)


def test_agent_and_team_breakdowns_add_up_to_the_totals(tmp_path):
    from pipeline.forecast import Team

    deals = [
        deal("1", "Prospecting", 1000, "ann"), deal("2", "Proposal", 500, "ann"),
        deal("3", "Negotiation", 800, "bob"), deal("4", "Qualified", 300, "cy"), deal("5", "Proposal", 700, "dee"),
    ]
    teams = {"ann": Team("Mo", "West"), "bob": Team("Mo", "West"), "cy": Team("Lu", "East")}  # dee has no team
    result = forecast(deals, Q3, 1000, rates(), stage_order=FUNNEL.open_stages, committed={"1"}, teams=teams)
    for lines in (result.by_agent, result.by_manager, result.by_office):
        assert sum(g.deals for g in lines) == 5
        assert sum(g.pipeline for g in lines) == pytest.approx(result.pipeline)
        assert sum(g.weighted for g in lines) == pytest.approx(result.weighted)
        assert sum(g.commit for g in lines) == pytest.approx(result.commit)
    assert {g.group: g.deals for g in result.by_manager} == {"Mo": 3, "Lu": 1, "(no team)": 1}
    ann = next(g for g in result.by_agent if g.group == "ann")
    assert ann.weighted == pytest.approx(1000 * 0.1 + 500 * 0.4) and ann.commit == pytest.approx(1000 + 200)


def test_as_of_rebuilds_the_pipeline_without_looking_ahead(tmp_path):
    csv = write(
        tmp_path / "p.csv",
        "h1,ann,P,acme,Won,2017-01-02,2017-03-01,100",
        "h2,ann,P,acme,Lost,2017-01-02,2017-03-02,0",
        "x,ann,P,acme,Won,2017-03-10,2017-08-01,300",   # open on 2017-07-01, won later
        "y,ann,P,acme,Lost,2017-03-10,2017-08-01,0",    # open on 2017-07-01, lost later
        "z,ann,P,acme,Won,2017-07-05,2017-08-01,900",   # engaged after the as-of date
        "p,ann,P,acme,Prospecting,,,",                  # cannot be placed in time
    )
    result = run_forecast(csv, ForecastConfig(), target="1000", period="2017-Q3", as_of="2017-07-01",
                          products_file=write(tmp_path / "pr.csv", "P,200", header="product,sales_price"))
    assert result.pipeline == pytest.approx(300 + 200)
    assert result.stages[0].rate.sample == 2 and result.stages[0].rate.rate == pytest.approx(0.5)
    assert result.weighted == pytest.approx(250)
    assert any("1 open deals without an engage date left out" in n for n in result.notes)


# --- backtest --------------------------------------------------------------------------------

BACKTEST_ROWS = (
    "A,ann,P,acme,Won,2017-01-10,2017-02-15,100",
    "B,ann,P,acme,Lost,2017-01-20,2017-03-01,0",
    "C,bob,P,acme,Won,2017-03-01,2017-04-20,300",
    "D,bob,P,acme,Lost,2017-03-15,2017-05-01,0",
    "E,bob,P,acme,Engaging,2017-02-01,,",
    "F,ann,P,acme,Won,2017-04-10,2017-05-20,500",
    "G,ann,P,acme,Prospecting,,,",
    "H,ann,P,acme,Won,2017-06-01,2017-08-01,400",
)


def test_backtest_matches_hand_computed_figures(tmp_path):
    write(tmp_path / "sales_pipeline.csv", *BACKTEST_ROWS)
    write(tmp_path / "products.csv", "P,200", header="product,sales_price")
    result = run_backtest(tmp_path, ForecastConfig())
    q1, q2, q3 = result.quarters
    # Q1: nothing was engaged before 2017-01-01.
    assert q1.period.label == "2017-Q1" and q1.skipped and q1.actual == 100
    # Q2: open on Apr 1 = C (300, its close value), D (lost: list price 200), E (200);
    # win rate from A won, B lost = 1/2; won in Q2 = C + F.
    assert (q2.open_deals, q2.pipeline, q2.actual) == (3, 700, 800)
    assert q2.rates[0].sample == 2 and q2.rates[0].rate == 0.5
    assert q2.forecasts == pytest.approx({"weighted": 350, "coverage": 700 / 3, "naive": 100})
    # Q3: open on Jul 1 = E (200), H (400); rate from A, C, F won / B, D lost = 3/5; won = H.
    assert (q3.open_deals, q3.pipeline, q3.actual) == (2, 600, 400)
    assert q3.forecasts == pytest.approx({"weighted": 360, "coverage": 200, "naive": 800})
    errors = {e.method: e for e in result.errors}
    assert errors["weighted"].quarters == 2
    assert errors["weighted"].mape == pytest.approx(100 * (0.5625 + 0.1) / 2)
    assert errors["weighted"].bias == pytest.approx(-100 * (0.5625 + 0.1) / 2)
    assert errors["coverage"].mape == pytest.approx(100 * ((800 - 700 / 3) / 800 + 0.5) / 2)
    assert errors["naive"].mape == pytest.approx(100 * (0.875 + 1.0) / 2)
    assert errors["naive"].bias == pytest.approx(100 * (-0.875 + 1.0) / 2)


def test_backtest_win_rates_use_only_deals_closed_before_the_quarter():
    cfg = ForecastConfig()
    future = [Deal("w", "Won", "won", 10.0, "close_value", engage_date=date(2017, 1, 1), close_date=date(2017, 7, 1), close_value=10.0)]
    past = [Deal("l", "Lost", "lost", 10.0, "list price", engage_date=date(2017, 1, 1), close_date=date(2017, 2, 1), close_value=0.0)]
    result = backtest(future + past, cfg)
    q2 = next(q for q in result.quarters if q.period.label == "2017-Q2")
    assert q2.rates[0].won == 0 and q2.rates[0].lost == 1  # the win in July is not known on Apr 1
    assert q2.forecasts["weighted"] == 0


# --- from calls to deals ---------------------------------------------------------------------

def test_deal_risk_reads_the_calls_of_each_deal():
    deals = [deal("d1", "Proposal", 1000, account="Acme"), deal("d2", "Negotiation", 500, account="Acme"), deal("d3", "Proposal", 200, account="Zeta")]
    calls = [
        {"deal_id": "d1", "date": "2017-07-01", "sentiment": -0.6, "issue_state": "unresolved", "intents": ["pricing"]},
        {"deal_id": "d1", "date": "2017-07-09", "sentiment": 0.4, "issue_state": "resolved", "intents": []},
        {"account": "acme", "date": date(2017, 7, 5), "sentiment": "negative", "issue_state": "escalated", "intents": "cancellation"},
        {"deal_id": "d3", "date": "2017-07-02", "sentiment": 0.2, "issue_state": "resolved", "intents": ["order_status"]},
    ]
    risk = {r.deal_id: r for r in deal_risk(deals, rates(), calls, FUNNEL)}
    d1, d2, d3 = risk["d1"], risk["d2"], risk["d3"]
    assert (d1.calls, d1.last_call, d1.last_sentiment) == (3, date(2017, 7, 9), 0.4)  # the latest call ended well
    assert d1.unresolved_issues == 2 and d1.risky_intents == ("pricing", "cancellation")
    assert d1.at_risk and d1.weighted == pytest.approx(400)
    assert d2.calls == 1 and d2.last_sentiment == "negative" and d2.at_risk
    assert "latest call ended negative (negative)" in d2.reasons
    assert not d3.at_risk and d3.reasons == ()
    assert [r.deal_id for r in deal_risk(deals, rates(), calls, FUNNEL)] == ["d1", "d2", "d3"]


# --- arguments and config --------------------------------------------------------------------

def test_period_and_amount_parsing():
    assert (parse_period("2017-Q3").start, parse_period("2017-Q3").end) == (date(2017, 7, 1), date(2017, 10, 1))
    assert parse_period("2017-12").end == date(2018, 1, 1)
    assert parse_amount("10M") == 10 * M and parse_amount("1,500,000") == 1.5 * M
    for bad in ("2017-Q5", "Q3", "2017-13"):
        with pytest.raises(ForecastError, match="--period"):
            parse_period(bad)
    with pytest.raises(ForecastError, match="--target"):
        parse_amount("-5")


def test_forecast_config_is_validated():
    cfg = load_config(None, [parse_override("forecast.coverage_ratio=4"), parse_override("forecast.win_rates.Engaging=0.25")])
    assert cfg.forecast.coverage_ratio == 4.0 and cfg.forecast.win_rates == {"Engaging": 0.25}
    with pytest.raises(ConfigError, match="forecast.win_rates"):
        load_config(None, [parse_override("forecast.win_rates.Closing=0.5")])
    with pytest.raises(ConfigError, match="forecast.columns"):
        load_config(None, [parse_override("forecast.columns.value=x")])


# --- CLI -------------------------------------------------------------------------------------

def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_cli_forecast_end_to_end(tmp_path, capsys):
    csv = write(
        tmp_path / "deals.csv",
        "h1,ann,P,acme,Won,2017-01-02,2017-03-01,100",
        "h2,bob,P,acme,Lost,2017-01-02,2017-03-02,0",
        "a,ann,P,acme,Engaging,2017-04-02,,4000000",
        "b,bob,P,acme,Engaging,2017-04-02,,6000000",
        "c,bob,P,acme,Prospecting,,,",
    )
    write(tmp_path / "products.csv", "P,2000000", header="product,sales_price")
    write(tmp_path / "sales_teams.csv", "ann,Mo,West", "bob,Lu,East", header="sales_agent,manager,regional_office")
    (tmp_path / "commit.txt").write_text("# committed this quarter\nb\n", encoding="utf-8")
    out_json = tmp_path / "out.json"
    code = main(["forecast", str(csv), "--target", "10M", "--period", "2017-Q3", "--commit", str(tmp_path / "commit.txt"), "--json", str(out_json)])
    assert code == 0
    printed = capsys.readouterr().out
    summary = _last_json(printed)
    # learned rate 1/2 for both stages; pipeline 4M + 6M + 2M (list price) = 12M
    assert summary["pipeline"] == 12 * M and summary["weighted"]["forecast"] == 6 * M
    assert summary["commit"]["forecast"] == pytest.approx(6 * M + 0.5 * 6 * M)
    assert summary["coverage"]["too_thin"] and summary["coverage"]["shortfall"] == 18 * M
    assert summary["deals_at_list_price"] == 1
    full = json.loads(out_json.read_text())
    assert {g["group"] for g in full["by_office"]} == {"West", "East"}
    assert full["win_rates"]["Engaging"]["sample"] == 2
    assert "list price" in printed and "teams from" in printed


def test_cli_forecast_exits_1_when_rows_were_bad(tmp_path, capsys):
    csv = write(tmp_path / "deals.csv", "a,ann,P,acme,Engaging,2017-04-02,,100", "b,ann,P,acme,Nope,2017-04-02,,100")
    code = main(["forecast", str(csv), "--target", "100", "--period", "2017-Q3", "--set", "forecast.win_rates.Engaging=0.5"])
    assert code == 1
    assert _last_json(capsys.readouterr().out)["bad_rows"] == 1


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["forecast", "{tmp}/missing.csv", "--target", "10M", "--period", "2017-Q3"], "missing.csv: pipeline CSV not found"),
        (["forecast", "{tmp}/deals.csv", "--target", "ten", "--period", "2017-Q3"], "--target 'ten'"),
        (["forecast", "{tmp}/deals.csv", "--target", "10", "--period", "2017-Q9"], "--period '2017-Q9'"),
        (["forecast", "{tmp}/deals.csv", "--target", "10", "--period", "2017-Q3", "--commit", "{tmp}/nope.txt"], "nope.txt: commit file not found"),
        (["evaluate", "forecast", "--data", "{tmp}/nowhere"], "nowhere: pipeline CSV not found"),
        (["forecast", "{tmp}/deals.csv", "--target", "10", "--period", "2017-Q3", "--json", "{tmp}/no/dir/o.json"],
         "o.json: cannot write JSON (no folder"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, needle):
    write(tmp_path / "deals.csv", "a,ann,P,acme,Engaging,2017-04-02,,100")
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("callpipe: error: ") and needle in err


def test_cli_missing_column_names_the_file_and_column(tmp_path, capsys):
    csv = write(tmp_path / "deals.csv", "a,Engaging", header="id,deal_stage")
    assert main(["forecast", str(csv), "--target", "10", "--period", "2017-Q3"]) == 2
    err = capsys.readouterr().err
    assert "deals.csv" in err and "'opportunity_id'" in err
    wide = write(tmp_path / "wide.csv", "1", header=",".join(f"field{i}" for i in range(500)))
    assert main(["forecast", str(wide), "--target", "10", "--period", "2017-Q3"]) == 2
    assert len(capsys.readouterr().err) < 400  # the header that is not one is cut short


def test_cli_evaluate_forecast_prints_errors_and_a_json_line(tmp_path, capsys):
    write(tmp_path / "sales_pipeline.csv", *BACKTEST_ROWS)
    write(tmp_path / "products.csv", "P,200", header="product,sales_price")
    assert main(["evaluate", "forecast", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "MAPE" in out and "bias" in out
    metrics = _last_json(out)
    assert metrics["methods"]["weighted"]["mape_pct"] == pytest.approx(33.125)
    assert metrics["methods"]["commit"] is None
    assert [q["quarter"] for q in metrics["quarters"]] == ["2017-Q1", "2017-Q2", "2017-Q3"]
