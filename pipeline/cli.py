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

def _input_arg(text: str) -> Path | str:
    from .remote import is_url

    # Path("s3://b/k") would fold the "//" and lose the URL.
    return text if is_url(text) else Path(text)


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="transcribe, tag, analyse and store calls")
    p.add_argument("paths", nargs="+", type=_input_arg,
                   help="audio files, folders (searched recursively), manifests (.csv, .jsonl) or text transcripts (.json: STC3 or callpipe's per-call JSON); "
                        "also object-store URLs of audio, folders or manifests (s3://..., gs://..., needs callpipe[remote])")
    p.add_argument("--out", type=Path, required=True, help="run directory: store, per-call JSON, report")
    p.add_argument("--asr-backend", help="override asr.backend")
    p.add_argument("--workers", type=int, default=None,
                   help="calls processed in parallel, each worker loading the models once (default: 1 locally; "
                        "with --executor ray one per GPU, or one per node on CPUs)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="where calls are processed: local (this machine) or ray (a Ray cluster; needs callpipe[ray])")
    p.add_argument("--ray-address", default="", metavar="ADDR",
                   help="with --executor ray: join this running cluster (e.g. auto or HOST:6379; ray://HOST:10001 needs the ray[client] package); "
                        "default: start a local Ray instance")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="N",
                   help="with --executor ray: GPUs per worker (default 0: CPU workers)")
    p.add_argument("--force", action="store_true", help="redo calls already stored with the same audio, config and models")
    p.add_argument("--log-json", action="store_true", help="one JSON object per log line (for a nightly job's log)")
    p.add_argument("--no-report", action="store_true", help="skip writing the HTML report")
    _config_args(p)
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from .batch import RunLockedError, SetupError, run_batch

    extra: dict = {}
    if args.asr_backend:
        extra.setdefault("asr", {})["backend"] = args.asr_backend
    if args.no_report:
        extra.setdefault("report", {})["enabled"] = False
    cfg = _load_config(args, extra)
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.executor != "ray" and (args.ray_address or args.gpus_per_worker):
        raise UsageError("--ray-address and --gpus-per-worker need --executor ray")
    # Text transcripts skip ASR and enter at the turns stage, as `callpipe import` does.
    transcripts = [p for p in args.paths if isinstance(p, Path) and p.suffix.lower() == ".json" and p.is_file()]
    audio = [p for p in args.paths if p not in transcripts]
    codes = []
    try:
        if audio:
            codes.append(run_batch(audio, args.out, cfg, workers=args.workers, force=args.force, log_json=args.log_json,
                                   executor=args.executor, ray_address=args.ray_address,
                                   gpus_per_worker=args.gpus_per_worker).exit_code)
        if transcripts:
            from .importers import import_transcripts

            codes.append(import_transcripts(transcripts, args.out, cfg, force=args.force, log_json=args.log_json).exit_code)
    except (RunLockedError, SetupError) as exc:
        raise UsageError(str(exc)) from None
    return max(codes)


# --- report ----------------------------------------------------------------------------------

def _add_report(sub) -> None:
    p = sub.add_parser("report", help="(re)write the HTML review pages of a run directory from its store")
    p.add_argument("out", type=Path, help="run directory written by `callpipe run`")
    p.add_argument("--copy-audio", action="store_true",
                   help="copy each call's audio into DIR/report/audio/ so the folder can be published on its own")
    p.set_defaults(func=_cmd_report)


def _existing_store(out: Path):
    from .store import Store

    if not (out / Store.FILENAME).exists():
        raise UsageError(f"{out}: no {Store.FILENAME} here; run `callpipe run ... --out {out}` first")
    return Store(out)


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    with _existing_store(args.out) as store:
        index = write_report(store, args.out, copy_audio=args.copy_audio)
    print(f"report: {index}")
    return EXIT_OK


# --- serve -----------------------------------------------------------------------------------

def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="serve a run directory's review pages, with the calls' audio, over HTTP")
    p.add_argument("out", type=Path, help="run directory written by `callpipe run`")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from .report import write_report
    from .report.server import make_server

    with _existing_store(args.out) as store:
        if not (args.out / "report" / "index.html").exists():
            write_report(store, args.out)
    try:
        server = make_server(args.out, args.host, args.port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port} ({exc.strerror})") from None
    host, port = server.server_address[:2]
    print(f"serving {args.out / 'report'} at http://{host}:{port}/ (Ctrl-C to stop; `callpipe report {args.out}` refreshes the pages)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return EXIT_OK


# --- export ----------------------------------------------------------------------------------

def _add_export(sub) -> None:
    from .export import FORMATS

    p = sub.add_parser("export", help="write per-call JSON, CSV, Parquet and subtitles from a run directory's store")
    p.add_argument("out", type=Path, help="run directory written by `callpipe run`")
    p.add_argument("--format", dest="formats", action="append", choices=(*FORMATS, "all"),
                   help="json, csv (turns.csv, analyses.csv), parquet, srt or vtt; repeatable (default all)")
    p.add_argument("--dest", type=Path, help="folder to write to (default DIR/export)")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import FORMATS, export

    formats = FORMATS if not args.formats or "all" in args.formats else args.formats
    dest = args.dest or args.out / "export"
    with _existing_store(args.out) as store:
        written = export(store, dest, formats)
    print(f"export: {len(written)} file(s) in {dest}")
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
    intents = esub.add_parser("intents", help="customer intent on a labelled split, e.g. BANKING77 (accuracy, macro-F1)")
    intents.add_argument("--train", type=Path, required=True, help="CSV with columns text,label (or text,category) to fit on")
    intents.add_argument("--test", type=Path, required=True, help="CSV in the same format to score on")
    intents.set_defaults(func=_cmd_evaluate_intents)
    fc = esub.add_parser("forecast", help="backtest the sales forecasts quarter by quarter (MAPE, bias)")
    fc.add_argument("--data", type=Path, required=True, help="folder with sales_pipeline.csv (and products.csv), or a pipeline CSV")
    fc.add_argument("--products", type=Path, help="product list prices CSV (default: products.csv beside the pipeline)")
    fc.add_argument("--json", type=Path, help="also write the full result as JSON here")
    _config_args(fc)
    fc.set_defaults(func=_cmd_evaluate_forecast)
    asr = esub.add_parser("asr", help="WER (English) / CER (Mandarin) against human references; backend agreement")
    asr.add_argument("--data", type=Path, required=True, help="data folder (../shared/data layout: speech_en_faster_whisper/, speech_zh_en_wenet/, speech_en_ami_meeting/)")
    asr.add_argument("--asr-backend", help="override asr.backend")
    asr.add_argument("--agreement", metavar="BACKEND", help="also run this backend on the same audio and report word agreement")
    asr.add_argument("--json", type=Path, help="also write the full result as JSON here")
    _config_args(asr)
    asr.set_defaults(func=_cmd_evaluate_asr)
    dia = esub.add_parser("diarize", help="mono speaker separation: roles on the stereo call mixed to mono, speaker timing vs the AMI RTTM")
    dia.add_argument("--data", type=Path, required=True, help="data folder (holds calls/aws_lca_call40/ and speech_en_ami_meeting/)")
    dia.add_argument("--json", type=Path, help="also write the full result as JSON here")
    _config_args(dia)
    dia.set_defaults(func=_cmd_evaluate_diarize)
    for name, help_text in (("scores", "efficiency score vs STC3 annotators' mean E, A, S (Spearman)"),
                            ("suggest", "next-act hits@k and response similarity on held-out STC3 dialogues")):
        ev = esub.add_parser(name, help=help_text)
        ev.add_argument("--data", type=Path, help="STC3 folder (dialogue-level split of its training file)")
        ev.add_argument("--lang", choices=["en", "zh"], default="en")
        ev.add_argument("--train", type=Path, help="STC3-format JSON with annotations to fit on")
        ev.add_argument("--test", type=Path, help="STC3-format JSON with annotations to test on")
        if name == "scores":
            ev.add_argument("--no-calibrate", action="store_true", help="use the config's weights instead of fitting them on --train")
        _config_args(ev)
        ev.set_defaults(func=_cmd_evaluate_analytics, analytics=name)


def _cmd_evaluate_analytics(args: argparse.Namespace) -> int:
    from .evaluation_analytics import evaluate_scores, evaluate_suggest

    if not args.data and not (args.train and args.test):
        raise UsageError(f"evaluate {args.analytics}: give --data DIR or both --train FILE and --test FILE")
    cfg = _load_config(args)
    if args.analytics == "scores":
        metrics = evaluate_scores(args.data, args.lang, args.train, args.test, cfg, calibrate=not args.no_calibrate)
    else:
        metrics = evaluate_suggest(args.data, args.lang, args.train, args.test, cfg)
    _print_metrics(metrics)
    return EXIT_OK


# --- import and suggest ------------------------------------------------------------------------

def _add_import(sub) -> None:
    p = sub.add_parser("import", help="store text transcripts (STC3 JSON, callpipe per-call JSON) as `run` stores calls")
    p.add_argument("paths", nargs="+", type=Path, help=".json transcript files or folders holding them")
    p.add_argument("--out", type=Path, required=True, help="run directory: store, per-call JSON, report")
    p.add_argument("--force", action="store_true", help="redo calls already stored unchanged")
    p.add_argument("--workers", type=int, default=1, help="processes that tag and score in parallel (default 1)")
    p.add_argument("--log-json", action="store_true", help="one JSON object per log line")
    p.add_argument("--no-report", action="store_true", help="skip writing the HTML report")
    _config_args(p)
    p.set_defaults(func=_cmd_import)


def _cmd_import(args: argparse.Namespace) -> int:
    from .batch import RunLockedError, SetupError
    from .importers import import_transcripts

    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    cfg = _load_config(args, {"report": {"enabled": False}} if args.no_report else None)
    try:
        return import_transcripts(args.paths, args.out, cfg, force=args.force, log_json=args.log_json, workers=args.workers).exit_code
    except (RunLockedError, SetupError) as exc:
        raise UsageError(str(exc)) from None


def _add_suggest(sub) -> None:
    p = sub.add_parser("suggest", help="next best agent acts and responses for a conversation so far")
    p.add_argument("out", type=Path, help="run directory whose calls are the history")
    p.add_argument("--call", help="a stored call id (with --turn)")
    p.add_argument("--turn", type=int, help="the conversation as it stood after this turn index")
    p.add_argument("--transcript", type=Path, help="or a transcript so far: STC3 or callpipe per-call JSON (first call)")
    p.add_argument("-k", type=int, help="suggestions (default suggest.k)")
    _config_args(p)
    p.set_defaults(func=_cmd_suggest)


def _cmd_suggest(args: argparse.Namespace) -> int:
    from .importers import TranscriptError, load_transcripts
    from .suggest import suggest_for_call_turn, suggest_for_transcript

    cfg = _load_config(args)
    if args.k is not None and args.k < 1:
        raise UsageError(f"-k must be >= 1, got {args.k}")
    if args.transcript and args.call is not None:
        raise UsageError("suggest: give either --transcript FILE or --call ID --turn N, not both")
    k = args.k or cfg.suggest.k
    with _existing_store(args.out) as store:
        if args.transcript:
            try:
                call = load_transcripts(args.transcript)[0]
            except (TranscriptError, IndexError) as exc:
                raise UsageError(f"{args.transcript}: no transcript ({exc})") from None
            result = suggest_for_transcript(store, [(t.role, t.text) for t in call.turns], call.language, k, cfg)
        elif args.call is not None and args.turn is not None:
            try:
                result = suggest_for_call_turn(store, args.call, args.turn, k, cfg.suggest)
            except KeyError as exc:
                raise UsageError(f"not stored: {exc.args[0] if exc.args else exc}") from None
        else:
            raise UsageError("suggest: give --call ID --turn N, or --transcript FILE")
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return EXIT_OK


def _print_metrics(metrics: dict) -> None:
    print(json.dumps(metrics, sort_keys=True))


def _cmd_evaluate_acts(args: argparse.Namespace) -> int:
    from .tagging.training import evaluate_acts

    if not args.data and not (args.train and args.test):
        raise UsageError("evaluate acts: give --data DIR or both --train FILE and --test FILE")
    metrics = evaluate_acts(data=args.data, lang=args.lang, train=args.train, test=args.test, out=sys.stdout)
    _print_metrics(metrics)
    return EXIT_OK


def _cmd_evaluate_intents(args: argparse.Namespace) -> int:
    from .tagging.intents import evaluate_intents

    for path in (args.train, args.test):
        if not path.is_file():
            raise UsageError(f"evaluate intents: {path}: no such file")
    try:
        metrics = evaluate_intents(args.train, args.test, out=sys.stdout)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _print_metrics(metrics)
    return EXIT_OK


def _cmd_evaluate_forecast(args: argparse.Namespace) -> int:
    from .forecast import ForecastError, backtest_to_dict, format_backtest, run_backtest

    cfg = _load_config(args)
    _check_json_dir(args.json)
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
    _check_json_dir(args.json)
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


def _check_json_dir(path: Path | None) -> None:
    """Before any work: a --json path whose folder does not exist would lose the result."""
    if path is not None and not path.parent.is_dir():
        raise UsageError(f"{path}: cannot write JSON (no folder {path.parent})")


def _write_forecast_json(path: Path | None, data: dict) -> None:
    if path is None:
        return
    try:
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write JSON ({exc.strerror})") from None


# --- models / ASR evaluation ------------------------------------------------------------------

def _add_models(sub) -> None:
    p = sub.add_parser("models", help="manage speech models")
    msub = p.add_subparsers(dest="what", required=True)
    conv = msub.add_parser("convert", help="convert a CTranslate2 Whisper model into an openai-whisper checkpoint")
    conv.add_argument("source", help="'embedded', 'base' (multilingual extra) or a CTranslate2 model directory")
    conv.add_argument("out", type=Path, help="checkpoint to write (.pt), loadable with whisper.load_model or asr.model")
    conv.add_argument("--dtype", choices=["float16", "float32"], default="float16", help="stored precision (default float16, like OpenAI's checkpoints)")
    conv.set_defaults(func=_cmd_models_convert)


def _cmd_models_convert(args: argparse.Namespace) -> int:
    from .transcribe import TranscriptionError
    from .transcribe.convert import ConversionError, convert
    from .transcribe.models import cache_dir, resolve_ct2_model
    from .transcribe.openai import load_checkpoint

    try:
        source = resolve_ct2_model(args.source, cache_dir())
    except TranscriptionError as exc:
        raise UsageError(str(exc)) from None
    if source.local_dir is None:
        raise UsageError(f"{args.source}: not a local CTranslate2 model directory (nor 'embedded' or an installed extra)")
    try:
        out = convert(source.local_dir, args.out, dtype=args.dtype)
        model = load_checkpoint(str(out), "cpu")  # strict: every key of whisper.model.Whisper must match
    except (ConversionError, TranscriptionError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{args.out}: cannot write ({exc.strerror})") from None
    dims = model.dims
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {source.label}; {dims.n_audio_layer}+{dims.n_text_layer} layers, "
          f"width {dims.n_text_state}, vocabulary {dims.n_vocab}, {'multilingual' if model.is_multilingual else 'English-only'}; all keys matched")
    return EXIT_OK


def _cmd_evaluate_asr(args: argparse.Namespace) -> int:
    from .transcribe import TranscriptionError
    from .transcribe.evaluate import evaluate_asr, main_json

    extra = {"asr": {"backend": args.asr_backend}} if args.asr_backend else None
    cfg = _load_config(args, extra)
    try:
        result = evaluate_asr(args.data, cfg.asr, agreement_backend=args.agreement)
    except (FileNotFoundError, TranscriptionError) as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        args.json.write_text(main_json(result) + "\n", encoding="utf-8")
    print(main_json(result))
    return EXIT_OK


def _cmd_evaluate_diarize(args: argparse.Namespace) -> int:
    from .transcribe import TranscriptionError
    from .transcribe.evaluate import evaluate_diarize, main_json

    cfg = _load_config(args)
    try:
        result = evaluate_diarize(args.data, cfg)
    except (FileNotFoundError, TranscriptionError) as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        args.json.write_text(main_json(result) + "\n", encoding="utf-8")
    print(main_json(result))
    return EXIT_OK


# --- entry point -----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callpipe", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_report, _add_serve, _add_export, _add_train, _add_evaluate, _add_forecast, _add_import, _add_suggest, _add_models):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, UsageError, FileNotFoundError, ValueError) as exc:
        # Per-call problems never get here (a batch records them); these are bad arguments or data files.
        print(f"callpipe: error: {' '.join(str(exc).split())}", file=sys.stderr)
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
