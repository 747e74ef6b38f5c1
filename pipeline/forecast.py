"""Sales forecasts from a deal pipeline: weighted, coverage and commit, plus a backtest.

Three ways of reading one pipeline for one period:

* weighted - each open deal's amount times its stage's win rate, summed;
* coverage - the unweighted pipeline against the target, checked against a rule
  of thumb (3x by default): a pipeline below it is too thin to reach the target;
* commit - deals the sales person commits to count in full, the rest weighted.

Everything here is a pure function over frozen records except the few loaders at
the edge (``load_deals``, ``load_prices``, ``load_teams``, ``read_commit_ids``)
and ``run_forecast`` / ``run_backtest``, which wire them together for the CLI.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from math import fsum
from pathlib import Path

from .config import ForecastConfig

OPEN, WON, LOST = "open", "won", "lost"
LIST_PRICE = "list price"
NO_TEAM = "(no team)"


class ForecastError(ValueError):
    """An input that makes the forecast impossible; the message names the file or argument."""


# --- records ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Deal:
    id: str
    stage: str
    status: str
    """open, won or lost (from the stage)."""
    amount: float
    """Value at stake: the recorded amount where it means that, else the product's list price."""
    amount_source: str
    """The column the amount came from, or 'list price'."""
    agent: str = ""
    product: str = ""
    account: str = ""
    engage_date: date | None = None
    close_date: date | None = None
    """Actual close for won/lost deals; expected close for open ones."""
    close_value: float | None = None
    """The recorded amount as it stands in the file (for won deals: the value won)."""
    line: int = 0


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str


@dataclass(frozen=True)
class DealTable:
    """A deals CSV after loading: the usable deals and the rows that were not."""

    path: str
    deals: tuple[Deal, ...]
    bad_rows: tuple[BadRow, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Team:
    manager: str
    office: str


@dataclass(frozen=True)
class Period:
    label: str
    start: date
    end: date
    """Exclusive."""

    def __contains__(self, day: date) -> bool:
        return self.start <= day < self.end


@dataclass(frozen=True)
class StageRate:
    stage: str
    rate: float
    """nan when nothing was learned and nothing configured."""
    won: int = 0
    lost: int = 0
    source: str = "learned"
    """learned (from won/lost deals) or config."""

    @property
    def sample(self) -> int:
        return self.won + self.lost


@dataclass(frozen=True)
class StageLine:
    stage: str
    deals: int
    pipeline: float
    rate: StageRate
    weighted: float


@dataclass(frozen=True)
class Coverage:
    pipeline: float
    target: float
    rule: float
    """Pipeline needed per unit of target."""
    ratio: float
    required: float
    shortfall: float
    thin: bool


@dataclass(frozen=True)
class GroupLine:
    group: str
    deals: int
    pipeline: float
    weighted: float
    commit: float


@dataclass(frozen=True)
class ForecastResult:
    period: Period
    target: float
    as_of: date | None
    stages: tuple[StageLine, ...]
    pipeline: float
    weighted: float
    coverage: Coverage
    committed: float
    commit: float
    committed_ids: tuple[str, ...]
    commit_not_counted: tuple[tuple[str, str], ...]
    """(deal id, why) for committed ids that are not open deals of this period."""
    later: tuple[Deal, ...]
    """Open deals expected to close after the period: left out of every method."""
    later_weighted: float
    overdue: int
    """Open deals whose expected close date is already before the period: kept in it."""
    list_priced: int
    """Deals in the period valued at their product's list price (no amount recorded)."""
    by_agent: tuple[GroupLine, ...]
    by_manager: tuple[GroupLine, ...]
    by_office: tuple[GroupLine, ...]
    bad_rows: tuple[BadRow, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class QuarterBacktest:
    period: Period
    open_deals: int
    pipeline: float
    actual: float
    """Value won (close_value of won deals) with a close date in the quarter."""
    forecasts: dict[str, float] = field(default_factory=dict)
    rates: tuple[StageRate, ...] = ()
    skipped: str = ""


@dataclass(frozen=True)
class MethodError:
    method: str
    quarters: int
    mape: float
    """Mean absolute percentage error, in %."""
    bias: float
    """Mean signed percentage error, in %: above 0 over-forecasts."""


@dataclass(frozen=True)
class BacktestResult:
    source: str
    quarters: tuple[QuarterBacktest, ...]
    errors: tuple[MethodError, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DealRisk:
    deal_id: str
    account: str
    agent: str
    amount: float
    weighted: float
    calls: int
    last_call: date | None
    last_sentiment: float | str | None
    unresolved_issues: int
    risky_intents: tuple[str, ...]
    at_risk: bool
    reasons: tuple[str, ...]


# --- parsing arguments -----------------------------------------------------------------------

_PERIOD = re.compile(r"^(\d{4})(?:-(?:[Qq]([1-4])|(\d{1,2})))?$")
_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9}


def parse_period(text: str) -> Period:
    """'2017-Q3', '2017-07' or '2017'."""
    m = _PERIOD.match(text.strip())
    if not m or (m[3] and not 1 <= int(m[3]) <= 12):
        raise ForecastError(f"--period {text!r}: expected YYYY-Qn, YYYY-MM or YYYY")
    year = int(m[1])
    if m[2]:
        start = date(year, 3 * int(m[2]) - 2, 1)
        return Period(f"{year}-Q{m[2]}", start, _add_months(start, 3))
    if m[3]:
        start = date(year, int(m[3]), 1)
        return Period(f"{year}-{int(m[3]):02d}", start, _add_months(start, 1))
    return Period(str(year), date(year, 1, 1), date(year + 1, 1, 1))


def quarter_of(day: date) -> Period:
    return parse_period(f"{day.year}-Q{(day.month - 1) // 3 + 1}")


def _add_months(day: date, months: int) -> date:
    years, month = divmod(day.month - 1 + months, 12)
    return date(day.year + years, month + 1, 1)


def parse_amount(text: str | float, what: str = "--target") -> float:
    """A positive amount: 10000000, 10,000,000, 10M or 1.5k."""
    raw = str(text).strip().replace(",", "").replace("_", "")
    scale = _SUFFIX.get(raw[-1:].lower(), 1.0)
    if scale != 1.0:
        raw = raw[:-1]
    try:
        value = float(raw) * scale
    except ValueError:
        raise ForecastError(f"{what} {text!r}: expected an amount such as 10000000 or 10M") from None
    if not math.isfinite(value) or value <= 0:
        raise ForecastError(f"{what} {text!r}: must be a positive amount")
    return value


def parse_day(text: str, what: str = "--as-of") -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ForecastError(f"{what} {text!r}: expected a date YYYY-MM-DD") from None


# --- loading ---------------------------------------------------------------------------------

class _Bad(Exception):
    """One row that cannot be used; becomes a BadRow with its line number."""


def product_key(name: str) -> str:
    # Exports spell the same product differently ('GTXPro' vs 'GTX Pro'); case and
    # spaces carry no meaning in a product name, so they do not block a price lookup.
    return "".join(name.split()).casefold()


def _open_csv(path: Path, what: str):
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise ForecastError(f"{path}: {what} not found") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise ForecastError(f"{path}: cannot read {what} ({exc.strerror})") from None


def _read_rows(path: Path, what: str, needed: Sequence[str], hint: str = "") -> tuple[list[str], list[tuple[int, dict]]]:
    """Header and (line number, row) pairs; a missing needed column is an error naming the file."""
    with _open_csv(path, what) as f:
        try:
            reader = csv.DictReader(f)
            header = [h.strip() for h in reader.fieldnames or []]
            reader.fieldnames = header
            missing = [c for c in needed if c not in header]
            if missing:
                found = ", ".join(header) or "nothing"
                if len(found) > 200:  # not a CSV header at all, e.g. a JSON file's first line
                    found = found[:200] + "..."
                raise ForecastError(f"{path}: {what} has no column {', '.join(map(repr, missing))} (found: {found}){hint}")
            return header, [(reader.line_num, row) for row in reader]
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ForecastError(f"{path}: not a readable CSV ({exc})") from None


def load_prices(path: Path) -> dict[str, float]:
    """Product list prices from a CSV with columns product, sales_price (keys as product_key)."""
    _, rows = _read_rows(path, "products file", ("product", "sales_price"))
    prices = {}
    for line, row in rows:
        try:
            prices[product_key(row["product"] or "")] = float(row["sales_price"])
        except (TypeError, ValueError):
            raise ForecastError(f"{path}: line {line}: sales_price {row['sales_price']!r} is not a number") from None
    return prices


def load_teams(path: Path) -> dict[str, Team]:
    """Agent -> manager and regional office, from sales_agent, manager, regional_office columns."""
    _, rows = _read_rows(path, "teams file", ("sales_agent", "manager", "regional_office"))
    return {
        row["sales_agent"].strip(): Team((row["manager"] or "").strip(), (row["regional_office"] or "").strip())
        for _, row in rows
    }


def read_commit_ids(path: Path) -> tuple[str, ...]:
    """Deal ids, one a line; blank lines and '#' comments are ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ForecastError(f"{path}: commit file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ForecastError(f"{path}: cannot read commit file ({exc})") from None
    ids = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return tuple(dict.fromkeys(i for i in ids if i))


def _stage_lookup(cfg: ForecastConfig) -> dict[str, tuple[str, str]]:
    lookup = {}
    for status, stages in ((OPEN, cfg.open_stages), (WON, cfg.won_stages), (LOST, cfg.lost_stages)):
        for stage in stages:
            lookup[stage.casefold()] = (stage, status)
    return lookup


def load_deals(path: Path, cfg: ForecastConfig, prices: Mapping[str, float] | None = None) -> DealTable:
    """Read a deals CSV through the configured column names.

    A row that cannot be used (no id, unknown stage, unparsable date or number, no
    amount and no list price, duplicate id) is kept out of every total and
    reported with its line number.
    """
    path = Path(path)
    cols = {**ForecastConfig().columns, **cfg.columns}
    header, rows = _read_rows(path, "pipeline CSV", (cols["id"], cols["stage"]), "; map columns in forecast.columns")
    absent = [f"{key} ({cols[key]!r})" for key in ("amount", "engage_date", "close_date", "agent", "product") if cols[key] not in header]
    notes = (f"{path.name}: no column for {', '.join(absent)}; left blank (see forecast.columns)",) if absent else ()
    stages = _stage_lookup(cfg)
    deals: list[Deal] = []
    bad: list[BadRow] = []
    first_seen: dict[str, int] = {}
    for line, row in rows:
        try:
            deal = _parse_row(row, line, cols, stages, prices or {}, cfg.date_format)
            if deal.id in first_seen:
                raise _Bad(f"duplicate id {deal.id!r} (first on line {first_seen[deal.id]})")
        except _Bad as exc:
            bad.append(BadRow(line, str(exc)))
            continue
        first_seen[deal.id] = line
        deals.append(deal)
    return DealTable(str(path), tuple(deals), tuple(bad), notes)


def _parse_row(row: dict, line: int, cols: dict, stages: dict, prices: Mapping[str, float], date_format: str) -> Deal:
    def get(key: str) -> str:
        return (row.get(cols[key]) or "").strip()

    deal_id = get("id")
    if not deal_id:
        raise _Bad(f"no id in column {cols['id']!r}")
    if get("stage").casefold() not in stages:
        raise _Bad(f"unknown stage {get('stage')!r}" if get("stage") else f"no stage in column {cols['stage']!r}")
    stage, status = stages[get("stage").casefold()]
    engage = _row_date(get("engage_date"), cols["engage_date"], date_format)
    close = _row_date(get("close_date"), cols["close_date"], date_format)
    if status != OPEN and close is None:
        raise _Bad(f"{stage} deal has no {cols['close_date']}")
    if engage and close and close < engage:
        raise _Bad(f"{cols['close_date']} {close} is before {cols['engage_date']} {engage}")
    value = _row_number(get("amount"), cols["amount"])
    product = get("product")
    # A lost deal's recorded value is what it brought in (0), not what was at stake,
    # so only a positive figure there is read as the deal's size.
    if value is not None and (status != LOST or value > 0):
        amount, source = value, cols["amount"]
    elif product_key(product) in prices:
        amount, source = prices[product_key(product)], LIST_PRICE
    else:
        why = f"no list price for product {product!r}" if product else "no product to price it from"
        raise _Bad(f"no amount: {cols['amount']} is empty and {why}")
    return Deal(deal_id, stage, status, amount, source, get("agent"), product, get("account"), engage, close, value, line)


def _row_date(text: str, column: str, date_format: str) -> date | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, date_format).date()
    except ValueError:
        raise _Bad(f"unparsable {column} {text!r} (expected {date_format})") from None


def _row_number(text: str, column: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        raise _Bad(f"unparsable {column} {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise _Bad(f"{column} {text!r} is not a non-negative amount")
    return value


# --- the pipeline at a point in time ---------------------------------------------------------

def pipeline_at(deals: Iterable[Deal], as_of: date | None, cfg: ForecastConfig) -> list[Deal]:
    """The deals open at ``as_of``; ``None`` means the deals open in the file now.

    For a past date the pipeline is rebuilt from dates alone: a deal counts when it
    was engaged before ``as_of`` and not closed before it. Its stage then is the
    engaged stage (the only one the data dates), and a deal that closed later has
    no expected close date, since its real close date was not known yet.
    """
    if as_of is None:
        return [d for d in deals if d.status == OPEN]
    if not cfg.engaged_stage:
        raise ForecastError("--as-of: forecast.engaged_stage is empty, so a past pipeline cannot be rebuilt from engage dates")
    out = []
    for d in deals:
        if d.engage_date is None or d.engage_date >= as_of:
            continue
        if d.status == OPEN:
            out.append(replace(d, stage=cfg.engaged_stage))
        elif d.close_date is not None and d.close_date >= as_of:
            out.append(replace(d, stage=cfg.engaged_stage, status=OPEN, close_date=None))
    return out


def split_by_period(deals: Iterable[Deal], period: Period) -> tuple[list[Deal], list[Deal]]:
    """(in the period, expected to close after it). No expected close date counts as in."""
    inside, later = [], []
    for d in deals:
        (later if d.close_date is not None and d.close_date >= period.end else inside).append(d)
    return inside, later


# --- win rates -------------------------------------------------------------------------------

def learn_win_rates(deals: Iterable[Deal], cfg: ForecastConfig, before: date | None = None) -> dict[str, StageRate]:
    """Per open stage: won / (won + lost) among closed deals that had reached it.

    Every deal passed the first stage; a deal with an engage date reached the
    engaged stage (and so every stage before it). Later stages cannot be dated, so
    they learn nothing and need a configured rate. Only deals closed before
    ``before`` count, so a backtest never learns from its own future.
    """
    order = list(cfg.open_stages)
    engaged = order.index(cfg.engaged_stage) if cfg.engaged_stage in order else 0
    won = [0] * len(order)
    lost = [0] * len(order)
    for d in deals:
        if d.status == OPEN or (before is not None and (d.close_date is None or d.close_date >= before)):
            continue
        counts = won if d.status == WON else lost
        for i in range(engaged + 1 if d.engage_date else 1):
            counts[i] += 1
    return {
        stage: StageRate(stage, won[i] / (won[i] + lost[i]) if won[i] + lost[i] else math.nan, won[i], lost[i])
        for i, stage in enumerate(order)
    }


def stage_rates(deals: Iterable[Deal], cfg: ForecastConfig, before: date | None = None) -> dict[str, StageRate]:
    """Configured win rates where given, learned ones for the other stages."""
    rates = learn_win_rates(deals, cfg, before)
    for stage, rate in cfg.win_rates.items():
        rates[stage] = StageRate(stage, rate, source="config")
    return rates


def _check_rates(deals: Iterable[Deal], rates: Mapping[str, StageRate], before: date | None = None) -> None:
    missing = sorted({d.stage for d in deals if math.isnan(rates.get(d.stage, StageRate(d.stage, math.nan)).rate)})
    if missing:
        when = f" before {before}" if before else ""
        raise ForecastError(
            f"no win rate for stage {', '.join(map(repr, missing))}: no won or lost deal{when} had reached it; "
            f"set forecast.win_rates"
        )


# --- the three methods -----------------------------------------------------------------------

def weighted_value(deal: Deal, rates: Mapping[str, StageRate]) -> float:
    return deal.amount * rates[deal.stage].rate


def weighted_pipeline(deals: Sequence[Deal], rates: Mapping[str, StageRate], stage_order: Sequence[str]) -> tuple[StageLine, ...]:
    """Method 1, per stage: amount and amount x win rate."""
    lines = []
    for stage in stage_order:
        at = [d for d in deals if d.stage == stage]
        lines.append(StageLine(stage, len(at), fsum(d.amount for d in at), rates[stage], fsum(weighted_value(d, rates) for d in at)))
    return tuple(lines)


def coverage(pipeline: float, target: float, rule: float = 3.0) -> Coverage:
    """Method 2: is the pipeline at least ``rule`` times the target, and if not, how far short."""
    required = rule * target
    return Coverage(pipeline, target, rule, pipeline / target, required, max(0.0, required - pipeline), pipeline < required)


def commit_forecast(deals: Iterable[Deal], rates: Mapping[str, StageRate], committed: Collection[str]) -> tuple[float, float]:
    """Method 3: (committed value, forecast). Committed deals count in full whatever their stage."""
    deals = list(deals)
    full = fsum(d.amount for d in deals if d.id in committed)
    return full, full + fsum(weighted_value(d, rates) for d in deals if d.id not in committed)


def breakdown(deals: Iterable[Deal], rates: Mapping[str, StageRate], committed: Collection[str], key: Callable[[Deal], str]) -> tuple[GroupLine, ...]:
    """One line per group, largest weighted value first; the lines add up to the totals."""
    groups: dict[str, list[Deal]] = {}
    for d in deals:
        groups.setdefault(key(d), []).append(d)
    lines = [
        GroupLine(name, len(ds), fsum(d.amount for d in ds), fsum(weighted_value(d, rates) for d in ds), commit_forecast(ds, rates, committed)[1])
        for name, ds in groups.items()
    ]
    return tuple(sorted(lines, key=lambda g: (-g.weighted, g.group)))


def forecast(
    deals: Iterable[Deal],
    period: Period,
    target: float,
    rates: Mapping[str, StageRate],
    *,
    stage_order: Sequence[str],
    coverage_rule: float = 3.0,
    committed: Collection[str] = (),
    teams: Mapping[str, Team] | None = None,
    as_of: date | None = None,
) -> ForecastResult:
    """All three methods and the breakdowns for the open deals ``deals``."""
    inside, later = split_by_period(deals, period)
    _check_rates(inside + later, rates, as_of)
    committed = set(committed)
    present = {d.stage for d in inside}
    stages = weighted_pipeline(inside, rates, [s for s in stage_order if s in present] + sorted(present - set(stage_order)))
    pipeline = fsum(line.pipeline for line in stages)
    full, commit = commit_forecast(inside, rates, committed)
    inside_ids = {d.id for d in inside}
    later_ids = {d.id for d in later}
    not_counted = tuple(
        (i, "closes after the period" if i in later_ids else "not an open deal in the pipeline")
        for i in sorted(committed - inside_ids)
    )
    teams = teams or {}

    def team(d: Deal) -> Team:
        return teams.get(d.agent, Team(NO_TEAM, NO_TEAM))

    return ForecastResult(
        period=period,
        target=target,
        as_of=as_of,
        stages=stages,
        pipeline=pipeline,
        weighted=fsum(line.weighted for line in stages),
        coverage=coverage(pipeline, target, coverage_rule),
        committed=full,
        commit=commit,
        committed_ids=tuple(sorted(committed & inside_ids)),
        commit_not_counted=not_counted,
        later=tuple(sorted(later, key=lambda d: (d.close_date, d.id))),
        later_weighted=fsum(weighted_value(d, rates) for d in later),
        overdue=sum(1 for d in inside if d.close_date is not None and d.close_date < period.start),
        list_priced=sum(1 for d in inside if d.amount_source == LIST_PRICE),
        by_agent=breakdown(inside, rates, committed, lambda d: d.agent or "(no agent)"),
        by_manager=breakdown(inside, rates, committed, lambda d: team(d).manager),
        by_office=breakdown(inside, rates, committed, lambda d: team(d).office),
    )


# --- wiring for the CLI ----------------------------------------------------------------------

def _side_file(pipeline_csv: Path, given: Path | None, name: str) -> Path | None:
    """An explicit file, else ``name`` beside the pipeline CSV when one is there."""
    if given is not None:
        return Path(given)
    beside = Path(pipeline_csv).parent / name
    return beside if beside.is_file() and beside.resolve() != Path(pipeline_csv).resolve() else None


def _prices(pipeline_csv: Path, products_file: Path | None, cfg: ForecastConfig) -> tuple[dict[str, float], list[str]]:
    path = _side_file(pipeline_csv, products_file, "products.csv")
    prices = load_prices(path) if path else {}
    prices.update({product_key(p): v for p, v in cfg.product_prices.items()})
    sources = ([str(path)] if path else []) + (["forecast.product_prices"] if cfg.product_prices else [])
    return prices, sources


def _amount_note(priced: int, deals: int, amount_column: str, price_sources: Sequence[str]) -> str:
    where = " and ".join(price_sources) or "nowhere (no products file, no forecast.product_prices)"
    return (
        f"amounts: {amount_column} where recorded, else the product's list price from {where}; "
        f"{priced} of the period's {deals} deals are valued at list price"
    )


def run_forecast(
    pipeline_csv: Path,
    cfg: ForecastConfig,
    *,
    target: str | float,
    period: str,
    as_of: str | None = None,
    commit_file: Path | None = None,
    products_file: Path | None = None,
    teams_file: Path | None = None,
) -> ForecastResult:
    """Load the files, pick the pipeline, learn or take the win rates, forecast."""
    target_value = parse_amount(target)
    the_period = parse_period(period)
    day = parse_day(as_of) if as_of else None
    prices, price_sources = _prices(pipeline_csv, products_file, cfg)
    teams_path = _side_file(pipeline_csv, teams_file, "sales_teams.csv")
    teams = load_teams(teams_path) if teams_path else {}
    committed = read_commit_ids(commit_file) if commit_file else ()
    table = load_deals(pipeline_csv, cfg, prices)
    deals = pipeline_at(table.deals, day, cfg)
    rates = stage_rates(table.deals, cfg, before=day)
    result = forecast(
        deals, the_period, target_value, rates, stage_order=cfg.open_stages, coverage_rule=cfg.coverage_ratio,
        committed=committed, teams=teams, as_of=day,
    )
    notes = list(table.notes)
    amount_column = {**ForecastConfig().columns, **cfg.columns}["amount"]
    notes.append(_amount_note(result.list_priced, sum(s.deals for s in result.stages), amount_column, price_sources))
    if day is not None:
        unplaced = sum(1 for d in table.deals if d.status == OPEN and d.engage_date is None)
        notes.append(f"pipeline rebuilt as of {day} from engage/close dates; win rates learned from deals closed before it")
        if unplaced:
            notes.append(f"{unplaced} open deals without an engage date left out: they cannot be placed in time")
    notes.append(f"teams from {teams_path}" if teams_path else "no teams file: manager and office breakdowns show (no team)")
    return replace(result, bad_rows=table.bad_rows, notes=tuple(notes))


# --- backtest --------------------------------------------------------------------------------

BACKTEST_METHODS = ("weighted", "coverage", "naive")
"""commit is absent: a backtest would need the commit lists sales people actually made."""


def backtest(deals: Sequence[Deal], cfg: ForecastConfig, source: str = "") -> BacktestResult:
    """Each quarter: rebuild the pipeline at its start, forecast, compare with the value won.

    The pipeline and the win rates use only what was known on the quarter's first
    day: deals engaged before it and, for the rates, deals closed before it. The
    naive forecast (last quarter's won value) is there to judge the others against.
    """
    days = [d.engage_date for d in deals if d.engage_date] + [d.close_date for d in deals if d.close_date]
    if not days:
        raise ForecastError(f"{source or 'deals'}: no dated deals to backtest")
    quarters = []
    q, last = quarter_of(min(days)), quarter_of(max(days))
    previous: float | None = None
    while q.start <= last.start:
        quarters.append(_backtest_quarter(deals, q, cfg, previous))
        previous = quarters[-1].actual
        q = quarter_of(q.end)
    scored = [r for r in quarters if not r.skipped and r.actual > 0]
    errors = tuple(_method_error(m, scored) for m in BACKTEST_METHODS)
    notes = (
        "forecast = pipeline open at the quarter's first day: weighted (amount x learned win rate), "
        f"coverage (pipeline / {cfg.coverage_ratio:g}), naive (previous quarter's won value)",
        "commit is not measured: the data holds no record of what sales people committed",
        "open deals without an engage date cannot be placed in time and never enter a past pipeline",
    )
    return BacktestResult(source, tuple(quarters), errors, notes)


def _backtest_quarter(deals: Sequence[Deal], q: Period, cfg: ForecastConfig, previous: float | None) -> QuarterBacktest:
    actual = fsum(d.close_value or 0.0 for d in deals if d.status == WON and d.close_date is not None and d.close_date in q)
    open_now, _ = split_by_period(pipeline_at(deals, q.start, cfg), q)
    pipeline = fsum(d.amount for d in open_now)
    if not open_now:
        return QuarterBacktest(q, 0, 0.0, actual, skipped="no deal open at the quarter's start")
    rates = stage_rates(deals, cfg, before=q.start)
    used = tuple(rates[s] for s in cfg.open_stages if any(d.stage == s for d in open_now))
    try:
        _check_rates(open_now, rates, q.start)
    except ForecastError as exc:
        return QuarterBacktest(q, len(open_now), pipeline, actual, rates=used, skipped=str(exc))
    forecasts = {
        "weighted": fsum(weighted_value(d, rates) for d in open_now),
        "coverage": pipeline / cfg.coverage_ratio,
    }
    if previous is not None:
        forecasts["naive"] = previous
    return QuarterBacktest(q, len(open_now), pipeline, actual, forecasts, used)


def _method_error(method: str, rows: Sequence[QuarterBacktest]) -> MethodError:
    errors = [(r.forecasts[method] - r.actual) / r.actual for r in rows if method in r.forecasts]
    if not errors:
        return MethodError(method, 0, math.nan, math.nan)
    return MethodError(method, len(errors), 100 * fsum(map(abs, errors)) / len(errors), 100 * fsum(errors) / len(errors))


def run_backtest(data: Path, cfg: ForecastConfig, products_file: Path | None = None) -> BacktestResult:
    """``data`` is a folder holding sales_pipeline.csv (and products.csv), or a pipeline CSV."""
    data = Path(data)
    pipeline_csv = data / "sales_pipeline.csv" if data.is_dir() else data
    if not pipeline_csv.is_file():
        raise ForecastError(f"{pipeline_csv}: pipeline CSV not found")
    prices, _ = _prices(pipeline_csv, products_file, cfg)
    table = load_deals(pipeline_csv, cfg, prices)
    result = backtest(table.deals, cfg, str(pipeline_csv))
    extra = (f"{len(table.bad_rows)} bad rows excluded (first: line {table.bad_rows[0].line}: {table.bad_rows[0].reason})",) if table.bad_rows else ()
    return replace(result, notes=result.notes + table.notes + extra)


# --- from calls to deals ---------------------------------------------------------------------

def deal_risk(
    deals: Iterable[Deal],
    rates: Mapping[str, StageRate],
    calls: Iterable[Mapping],
    cfg: ForecastConfig,
) -> tuple[DealRisk, ...]:
    """What the calls say about each open deal, beside its weighted value.

    Each call is a plain dict: ``deal_id`` or ``account`` (a call naming only an
    account counts for every deal of that account), ``date`` (date or ISO text),
    ``sentiment`` (the customer's at the end: a number, below 0 negative, or a
    label such as 'negative'), ``issue_state`` and ``intents`` (labels). A deal is
    at risk when its latest call ended negative, an issue is still unresolved, or
    a customer voiced a risky intent. At-risk deals come first, larger weighted
    value first.
    """
    deals = [d for d in deals if d.status == OPEN]
    by_deal: dict[str, list[tuple[date, Mapping]]] = {d.id: [] for d in deals}
    by_account: dict[str, list[str]] = {}
    for d in deals:
        if d.account:
            by_account.setdefault(d.account.casefold(), []).append(d.id)
    for i, call in enumerate(calls):
        day = _call_day(call.get("date"), i)
        deal_id = str(call.get("deal_id") or "").strip()
        account = str(call.get("account") or "").strip().casefold()
        for target in [deal_id] if deal_id else by_account.get(account, []):
            if target in by_deal:
                by_deal[target].append((day, call))
    risky = {i.casefold() for i in cfg.risky_intents}
    unresolved_states = {s.casefold() for s in cfg.unresolved_issue_states}
    out = []
    for d in deals:
        seen = sorted(by_deal[d.id], key=lambda item: item[0])
        last_day, last = seen[-1] if seen else (None, {})
        sentiment = last.get("sentiment")
        unresolved = sum(1 for _, c in seen if str(c.get("issue_state") or "").casefold() in unresolved_states)
        intents = tuple(dict.fromkeys(i for _, c in seen for i in _labels(c.get("intents")) if i.casefold() in risky))
        reasons = []
        if _negative(sentiment, cfg.negative_sentiment_below):
            reasons.append(f"latest call ended negative ({sentiment})")
        if unresolved:
            reasons.append(f"{unresolved} unresolved issue{'s' if unresolved > 1 else ''}")
        if intents:
            reasons.append(f"risky intent: {', '.join(intents)}")
        out.append(DealRisk(
            d.id, d.account, d.agent, d.amount, weighted_value(d, rates), len(seen), last_day, sentiment,
            unresolved, intents, bool(reasons), tuple(reasons),
        ))
    return tuple(sorted(out, key=lambda r: (not r.at_risk, -r.weighted, r.deal_id)))


def _call_day(value, index: int) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return datetime.fromisoformat(str(value).strip()).date()
    except ValueError:
        raise ForecastError(f"call {index}: date {value!r} is not a date (YYYY-MM-DD)") from None


def _labels(value) -> tuple[str, ...]:
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(str(v) for v in value)


def _negative(sentiment, below: float) -> bool:
    if isinstance(sentiment, str):
        return sentiment.strip().casefold() == "negative"
    return isinstance(sentiment, (int, float)) and not isinstance(sentiment, bool) and sentiment < below


# --- output ----------------------------------------------------------------------------------

def _money(x: float) -> str:
    return f"{x:,.0f}"


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def _rate_text(r: StageRate) -> str:
    return "set in config" if r.source == "config" else f"learned: {r.won} won / {r.sample} closed"


def _group_table(title: str, lines: Sequence[GroupLine], committed: bool) -> list[str]:
    width = max([len(title)] + [len(g.group) for g in lines])
    head = f"  {title:<{width}}  {'deals':>6}  {'pipeline':>14}  {'weighted':>14}" + (f"  {'commit':>14}" if committed else "")
    rows = [
        f"  {g.group:<{width}}  {g.deals:>6}  {_money(g.pipeline):>14}  {_money(g.weighted):>14}" + (f"  {_money(g.commit):>14}" if committed else "")
        for g in lines
    ]
    return [head, *rows]


def format_forecast(r: ForecastResult, max_listed: int = 10) -> str:
    """The terminal table."""
    c = r.coverage
    deals = sum(s.deals for s in r.stages)
    pipe = f"as of {r.as_of}" if r.as_of else "deals open in the file"
    out = [f"Forecast {r.period.label} ({r.period.start} to {r.period.end}), target {_money(r.target)}, pipeline: {pipe}"]
    out.extend(f"  note: {n}" for n in r.notes)
    out.append("")
    out.append(f"  {'stage':<14}  {'deals':>6}  {'pipeline':>14}  {'win rate':>8}  {'weighted':>14}  rate from")
    for s in r.stages:
        out.append(f"  {s.stage:<14}  {s.deals:>6}  {_money(s.pipeline):>14}  {_pct(s.rate.rate):>8}  {_money(s.weighted):>14}  {_rate_text(s.rate)}")
    out.append(f"  {'total':<14}  {deals:>6}  {_money(r.pipeline):>14}  {'':>8}  {_money(r.weighted):>14}")
    out.append("")

    def verdict(value: float) -> str:
        gap = value - r.target
        return f"{'+' if gap >= 0 else '-'}{_money(abs(gap))} vs target: {'on track' if gap >= 0 else 'below target'}"

    out.append(f"  1 weighted pipeline   {_money(r.weighted):>14}  {verdict(r.weighted)}")
    out.append(
        f"  2 coverage            {c.ratio:>13.2f}x  rule {c.rule:g}x needs {_money(c.required)}: "
        + (f"WARNING pipeline too thin, {_money(c.shortfall)} more pipeline needed" if c.thin else "enough pipeline")
    )
    how = (
        f"{len(r.committed_ids)} committed deals in full ({_money(r.committed)}) + the rest weighted"
        if r.committed_ids else "no committed deals: same as weighted"
    )
    out.append(f"  3 commit              {_money(r.commit):>14}  {verdict(r.commit)} ({how})")
    for deal_id, why in r.commit_not_counted:
        out.append(f"    committed {deal_id} not counted: {why}")
    if r.later:
        out.append("")
        out.append(
            f"  excluded, expected to close after {r.period.label}: {len(r.later)} deals, "
            f"{_money(fsum(d.amount for d in r.later))} (weighted {_money(r.later_weighted)})"
        )
        for d in r.later[:max_listed]:
            out.append(f"    {d.id}  {d.close_date}  {d.stage:<12} {_money(d.amount):>12}  {d.agent}")
        if len(r.later) > max_listed:
            out.append(f"    ... and {len(r.later) - max_listed} more (all in --json)")
    if r.overdue:
        out.append(f"  {r.overdue} deals in the period are past their expected close date")
    if r.bad_rows:
        out.append("")
        out.append(f"  bad rows, excluded from every total: {len(r.bad_rows)}")
        for b in r.bad_rows[:max_listed]:
            out.append(f"    line {b.line}: {b.reason}")
        if len(r.bad_rows) > max_listed:
            out.append(f"    ... and {len(r.bad_rows) - max_listed} more (all in --json)")
    committed = bool(r.committed_ids)
    for title, lines in (("agent", r.by_agent), ("manager", r.by_manager), ("regional office", r.by_office)):
        out.append("")
        out.extend(_group_table(title, lines, committed))
    return "\n".join(out)


def _num(x: float) -> float | None:
    """JSON has no NaN."""
    return None if math.isnan(x) else round(x, 6)


def _rate_dict(r: StageRate) -> dict:
    return {"rate": _num(r.rate), "source": r.source, "won": r.won, "lost": r.lost, "sample": r.sample}


def forecast_summary(r: ForecastResult) -> dict:
    """The one-line JSON: totals, the three methods and counts."""
    c = r.coverage
    return {
        "period": r.period.label,
        "as_of": r.as_of.isoformat() if r.as_of else None,
        "target": _num(r.target),
        "deals": sum(s.deals for s in r.stages),
        "deals_at_list_price": r.list_priced,
        "pipeline": _num(r.pipeline),
        "weighted": {"forecast": _num(r.weighted), "on_track": r.weighted >= r.target},
        "coverage": {"ratio": _num(c.ratio), "rule": c.rule, "required": _num(c.required), "shortfall": _num(c.shortfall), "too_thin": c.thin},
        "commit": {"forecast": _num(r.commit), "committed": _num(r.committed), "committed_deals": len(r.committed_ids), "on_track": r.commit >= r.target},
        "win_rates": {s.stage: _rate_dict(s.rate) for s in r.stages},
        "later_deals": len(r.later),
        "later_pipeline": _num(fsum(d.amount for d in r.later)),
        "bad_rows": len(r.bad_rows),
    }


def forecast_to_dict(r: ForecastResult) -> dict:
    """Everything, for --json."""

    def groups(lines: Sequence[GroupLine]) -> list[dict]:
        return [{"group": g.group, "deals": g.deals, "pipeline": _num(g.pipeline), "weighted": _num(g.weighted), "commit": _num(g.commit)} for g in lines]

    return {
        **forecast_summary(r),
        "period_start": r.period.start.isoformat(),
        "period_end": r.period.end.isoformat(),
        "stages": [{"stage": s.stage, "deals": s.deals, "pipeline": _num(s.pipeline), "weighted": _num(s.weighted), **_rate_dict(s.rate)} for s in r.stages],
        "committed_ids": list(r.committed_ids),
        "commit_not_counted": [{"id": i, "why": why} for i, why in r.commit_not_counted],
        "later": [
            {"id": d.id, "stage": d.stage, "amount": _num(d.amount), "close_date": d.close_date.isoformat(), "agent": d.agent, "line": d.line}
            for d in r.later
        ],
        "by_agent": groups(r.by_agent),
        "by_manager": groups(r.by_manager),
        "by_office": groups(r.by_office),
        "bad_row_list": [{"line": b.line, "reason": b.reason} for b in r.bad_rows],
        "notes": list(r.notes),
    }


def format_backtest(b: BacktestResult) -> str:
    methods = BACKTEST_METHODS
    out = [f"Backtest: {b.source}", ""]
    out.append(f"  {'quarter':<8}  {'open':>5}  {'pipeline':>12}  {'won':>12}  " + "  ".join(f"{m:>12}" for m in methods) + "  win rates")
    for q in b.quarters:
        if q.skipped:
            out.append(f"  {q.period.label:<8}  {q.open_deals:>5}  {_money(q.pipeline):>12}  {_money(q.actual):>12}  skipped: {q.skipped}")
            continue
        cells = "  ".join(f"{_money(q.forecasts[m]) if m in q.forecasts else '-':>12}" for m in methods)
        rates = ", ".join(f"{r.stage} {_pct(r.rate)} (n={r.sample})" for r in q.rates)
        out.append(f"  {q.period.label:<8}  {q.open_deals:>5}  {_money(q.pipeline):>12}  {_money(q.actual):>12}  {cells}  {rates}")
    out.append("")
    out.append(f"  {'method':<10}  {'quarters':>8}  {'MAPE':>8}  {'bias':>8}")
    for e in b.errors:
        mape = "n/a" if math.isnan(e.mape) else f"{e.mape:.1f}%"
        bias = "n/a" if math.isnan(e.bias) else f"{e.bias:+.1f}%"
        out.append(f"  {e.method:<10}  {e.quarters:>8}  {mape:>8}  {bias:>8}")
    out.append(f"  {'commit':<10}  {0:>8}  {'n/a':>8}  {'n/a':>8}")
    out.append("")
    out.extend(f"  note: {n}" for n in b.notes)
    return "\n".join(out)


def backtest_to_dict(b: BacktestResult) -> dict:
    return {
        "source": b.source,
        "quarters": [
            {
                "quarter": q.period.label,
                "open_deals": q.open_deals,
                "pipeline": _num(q.pipeline),
                "actual_won": _num(q.actual),
                "forecasts": {m: _num(v) for m, v in q.forecasts.items()},
                "win_rates": {r.stage: _rate_dict(r) for r in q.rates},
                "skipped": q.skipped or None,
            }
            for q in b.quarters
        ],
        "methods": {
            **{e.method: {"quarters": e.quarters, "mape_pct": _num(e.mape), "bias_pct": _num(e.bias)} for e in b.errors},
            "commit": None,
        },
        "notes": list(b.notes),
    }
