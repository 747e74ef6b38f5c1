"""The `callpipe` command: a thin layer over the library; each command calls one function.

Exit codes: 0 success, 1 some inputs failed, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import ConfigError, load_config, parse_override

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments the parser could not catch; exits 2 with a one-line message."""


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML config file (see configs/default.toml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one config key; repeatable")


def _load_config(args: argparse.Namespace, extra: dict | None = None):
    overrides = [parse_override(o) for o in args.overrides]
    if extra:
        overrides.append(extra)
    return load_config(args.config, overrides)


# --- run -------------------------------------------------------------------------------------

def _add_run(sub) -> None:
    p = sub.add_parser("run", help="transcribe, tag, analyse and store calls")
    p.add_argument("paths", nargs="+", type=Path, help="audio files, folders (searched recursively) or manifests (.csv, .jsonl)")
    p.add_argument("--out", type=Path, required=True, help="run directory: store, per-call JSON, report")
    p.add_argument("--asr-backend", help="override asr.backend")
    p.add_argument("--workers", type=int, default=1, help="calls processed in parallel, each worker loading the models once (default 1)")
    p.add_argument("--force", action="store_true", help="redo calls already stored with the same audio, config and models")
    p.add_argument("--log-json", action="store_true", help="one JSON object per log line (for a nightly job's log)")
    p.add_argument("--no-report", action="store_true", help="skip writing the HTML report")
    _config_args(p)
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from .batch import RunLockedError, run_batch

    extra: dict = {}
    if args.asr_backend:
        extra.setdefault("asr", {})["backend"] = args.asr_backend
    if args.no_report:
        extra.setdefault("report", {})["enabled"] = False
    cfg = _load_config(args, extra)
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    try:
        summary = run_batch(args.paths, args.out, cfg, workers=args.workers, force=args.force, log_json=args.log_json)
    except RunLockedError as exc:
        raise UsageError(str(exc)) from None
    return summary.exit_code


# --- report ----------------------------------------------------------------------------------

def _add_report(sub) -> None:
    p = sub.add_parser("report", help="(re)write the HTML review pages and per-call JSON of a run directory")
    p.add_argument("out", type=Path, help="run directory written by `callpipe run`")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report
    from .store import Store

    if not (args.out / Store.FILENAME).exists():
        raise UsageError(f"{args.out}: no {Store.FILENAME} here; run `callpipe run ... --out {args.out}` first")
    with Store(args.out) as store:
        index = write_report(store, args.out)
    print(f"report: {index}")
    return EXIT_OK


# --- train -----------------------------------------------------------------------------------

def _add_train(sub) -> None:
    p = sub.add_parser("train", help="rebuild the shipped tagging models from public data")
    tsub = p.add_subparsers(dest="what", required=True)
    acts = tsub.add_parser("acts", help="per-turn issue-state acts from STC3 nugget labels")
    acts.add_argument("--data", type=Path, required=True, help="folder with STC3 train_data_{en,cn}.json")
    acts.add_argument("--lang", choices=["en", "zh"], default="en")
    acts.add_argument("--out", type=Path, help="model path (default: models/acts-LANG.skops)")
    acts.set_defaults(func=_cmd_train_acts)
    intents = tsub.add_parser("intents", help="customer intent model")
    intents.add_argument("--taxonomy", type=Path, help="few-shot taxonomy TOML (default configs/intents.toml)")
    intents.add_argument("--csv", type=Path, help="supervised CSV with columns text,label")
    intents.add_argument("--out", type=Path, help="model path (default under models/)")
    intents.set_defaults(func=_cmd_train_intents)
    both = tsub.add_parser("all", help="every shipped model, from ../shared/data-style folders")
    both.add_argument("--data", type=Path, required=True, help="the data folder (holds text_stc3_helpdesk/, text_banking77/)")
    both.set_defaults(func=_cmd_train_all)


def _cmd_train_acts(args: argparse.Namespace) -> int:
    from .tagging.training import train_acts_model

    path = train_acts_model(args.data, args.lang, args.out)
    print(f"wrote {path}")
    return EXIT_OK


def _cmd_train_intents(args: argparse.Namespace) -> int:
    from .tagging.intents import train_intent_model

    path = train_intent_model(taxonomy=args.taxonomy, csv=args.csv, out=args.out)
    print(f"wrote {path}")
    return EXIT_OK


def _cmd_train_all(args: argparse.Namespace) -> int:
    from .tagging.training import train_all

    for path in train_all(args.data):
        print(f"wrote {path}")
    return EXIT_OK


# --- evaluate --------------------------------------------------------------------------------

def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="measure a stage against public references")
    esub = p.add_subparsers(dest="what", required=True)
    acts = esub.add_parser("acts", help="per-turn act tagging on STC3 (accuracy, macro-F1)")
    acts.add_argument("--data", type=Path, help="STC3 folder (dialogue-level split of its training file)")
    acts.add_argument("--lang", choices=["en", "zh"], default="en")
    acts.add_argument("--train", type=Path, help="STC3-format JSON to train on")
    acts.add_argument("--test", type=Path, help="STC3-format JSON to test on")
    acts.set_defaults(func=_cmd_evaluate_acts)
    fc = esub.add_parser("forecast", help="backtest the sales forecasts quarter by quarter (MAPE, bias)")
    fc.add_argument("--data", type=Path, required=True, help="folder with sales_pipeline.csv (and products.csv), or a pipeline CSV")
    fc.add_argument("--products", type=Path, help="product list prices CSV (default: products.csv beside the pipeline)")
    fc.add_argument("--json", type=Path, help="also write the full result as JSON here")
    _config_args(fc)
    fc.set_defaults(func=_cmd_evaluate_forecast)


def _print_metrics(metrics: dict) -> None:
    print(json.dumps(metrics, sort_keys=True))


def _cmd_evaluate_acts(args: argparse.Namespace) -> int:
    from .tagging.training import evaluate_acts

    if not args.data and not (args.train and args.test):
        raise UsageError("evaluate acts: give --data DIR or both --train FILE and --test FILE")
    metrics = evaluate_acts(data=args.data, lang=args.lang, train=args.train, test=args.test, out=sys.stdout)
    _print_metrics(metrics)
    return EXIT_OK


def _cmd_evaluate_forecast(args: argparse.Namespace) -> int:
    from .forecast import ForecastError, backtest_to_dict, format_backtest, run_backtest

    cfg = _load_config(args)
    try:
        result = run_backtest(args.data, cfg.forecast, products_file=args.products)
    except ForecastError as exc:
        raise UsageError(str(exc)) from None
    print(format_backtest(result))
    _write_forecast_json(args.json, backtest_to_dict(result))
    _print_metrics(backtest_to_dict(result))
    return EXIT_OK


# --- forecast --------------------------------------------------------------------------------

def _add_forecast(sub) -> None:
    p = sub.add_parser("forecast", help="sales forecast for a period from a deal pipeline CSV: weighted, coverage, commit")
    p.add_argument("pipeline", type=Path, help="deals CSV; column names mapped in forecast.columns")
    p.add_argument("--target", required=True, help="the period's sales target, e.g. 10000000 or 10M")
    p.add_argument("--period", required=True, help="2017-Q3, 2017-07 or 2017")
    p.add_argument("--commit", type=Path, metavar="IDS_FILE", help="ids of committed deals (counted in full), one a line")
    p.add_argument("--as-of", metavar="DATE", help="rebuild the pipeline as it stood on DATE (default: deals open in the file)")
    p.add_argument("--products", type=Path, help="list prices (product,sales_price) for deals without an amount; default: products.csv beside PIPELINE")
    p.add_argument("--teams", type=Path, help="sales_agent,manager,regional_office CSV; default: sales_teams.csv beside PIPELINE")
    p.add_argument("--json", type=Path, help="also write the full result as JSON here")
    _config_args(p)
    p.set_defaults(func=_cmd_forecast)


def _cmd_forecast(args: argparse.Namespace) -> int:
    from .forecast import ForecastError, forecast_summary, forecast_to_dict, format_forecast, run_forecast

    cfg = _load_config(args)
    try:
        result = run_forecast(
            args.pipeline, cfg.forecast, target=args.target, period=args.period, as_of=args.as_of,
            commit_file=args.commit, products_file=args.products, teams_file=args.teams,
        )
    except ForecastError as exc:
        raise UsageError(str(exc)) from None
    print(format_forecast(result))
    _write_forecast_json(args.json, forecast_to_dict(result))
    _print_metrics(forecast_summary(result))
    return EXIT_FAILED if result.bad_rows else EXIT_OK


def _write_forecast_json(path: Path | None, data: dict) -> None:
    if path is None:
        return
    try:
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write JSON ({exc.strerror})") from None


# --- entry point -----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callpipe", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_report, _add_train, _add_evaluate, _add_forecast):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, UsageError) as exc:
        print(f"callpipe: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("callpipe: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as other command-line tools do.
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
