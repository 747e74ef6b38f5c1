"""Tagging throughput: turns tagged per second with every component on.

    python benchmarks/tagging.py [--data ../shared/data/text_stc3_helpdesk] [--calls 400] [--zh] [--import-copies 8]

Loads the default tagger once (``load_tagger(TaggingConfig(), "en")``: acts, customer
intent, sentiment, entities/PII) and tags real dialogues, the STC3 English helpdesk
conversations (``--data``, an STC3 folder or a data folder holding one), as ``callpipe
import`` does: ``Tagger.tag_calls`` on chunks of ``IMPORT_CHUNK`` calls, batched through
``nlp.pipe``. The sentiment cache is emptied before each timed pass, so no text is seen
twice in one.

Prints, measured in the same run:

- turns/s of ``Tagger.tag_calls`` (wall clock, and per CPU second of this process: the
  machine is shared, and the CPU figure moves less with other jobs), on a first pass
  (every word new to the process) and on the same dialogues with new texts (as later in a
  night: the words' n-grams are cached);
- a per-component breakdown (each pipe component timed on its own, same batches);
- the ratios to two peers on the same calls: one call at a time (``Tagger.tag``, as
  `callpipe run` tags an audio call) and one turn per batch (batch size 1);
- the ratio to the target of 2,000 turns/s;
- with ``--zh``, the same for the Chinese tagger on the STC3 Chinese dialogues;
- with ``--intent-model``, all of it with another intent model (to weigh its cost);
- the import path (tagging, redaction, scoring, events: ``processed_chunks``, what
  ``callpipe import --workers N`` runs) over all English dialogues with 1 and 2 worker
  processes (``--workers``), end to end and in steady state, and the ratio between them
  (``--import-copies K`` runs it on K distinct copies of the dialogues, so that the
  workers' start-up weighs on the end-to-end figure as it does over a night of calls;
  8 by default: 10,640 calls);
- a last line with what this machine does: the best worker count's turns/s once its
  models are loaded and end to end, beside one process's;

and one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.config import Config, TaggingConfig  # noqa: E402
from pipeline.importers import IMPORT_CHUNK, load_transcripts, processed_chunks  # noqa: E402
from pipeline.records import CUSTOMER  # noqa: E402
from pipeline.tagging import entities, sentiment  # noqa: E402
from pipeline.tagging.nlp import PII_COMPONENT, Tagger, load_tagger  # noqa: E402

TARGET = 2000.0  # turns/s
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "text_stc3_helpdesk"
FILES = {"en": "train_data_en.json", "zh": "train_data_cn.json"}


def dialogues(data: Path, lang: str, limit: int) -> list:
    folder = data / "text_stc3_helpdesk" if (data / "text_stc3_helpdesk").is_dir() else data
    path = folder / FILES[lang]
    if not path.is_file():
        sys.exit(f"{path}: not found; give --data with the STC3 helpdesk folder (train_data_en.json, train_data_cn.json)")
    calls = [c for c in load_transcripts(path) if c.turns]
    return calls[:limit] if limit else calls


def replicate(calls, copies: int) -> list:
    """``calls`` ``copies`` times, each copy after the first with new call ids and a case
    number added to every turn, so that no text is seen twice (as in a night of real calls)."""
    out = list(calls)
    for copy in range(1, copies):
        for call in calls:
            turns = tuple(replace(t, text=f"{t.text} case {copy}{t.index:03d}{len(out) % 997}") for t in call.turns)
            out.append(replace(call, call_id=f"{call.call_id}-{copy}", turns=turns))
    return out


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def chunks(calls, size: int = IMPORT_CHUNK):
    return [calls[i:i + size] for i in range(0, len(calls), size)]


def tag_all(tagger: Tagger, calls) -> None:
    for chunk in chunks(calls):
        tagger.tag_calls([c.turns for c in chunk])


def by_component(tagger: Tagger, calls) -> dict[str, float]:
    """Seconds per stage over all calls: building the Docs, each component, the call-level PII pass."""
    seconds: Counter = Counter()
    for chunk in chunks(calls):
        start = time.perf_counter()
        per_call = [tagger.docs(call.turns) for call in chunk]
        docs = [d for call_docs in per_call for d in call_docs]
        seconds["docs"] += time.perf_counter() - start
        for name, component in tagger.nlp.pipeline:
            start = time.perf_counter()
            if hasattr(component, "pipe"):
                docs = list(component.pipe(docs, batch_size=tagger.batch_size))
            else:
                docs = [component(doc) for doc in docs]
            seconds[name] += time.perf_counter() - start
        if tagger.nlp.has_pipe(PII_COMPONENT):
            start = time.perf_counter()
            at = 0
            for call_docs in per_call:
                entities.link_call(docs[at:at + len(call_docs)])
                at += len(call_docs)
            seconds["link_call"] += time.perf_counter() - start
    return dict(seconds)


def run(lang: str, calls, peer_calls: int, cfg: TaggingConfig) -> dict:
    started = time.perf_counter()
    tagger = load_tagger(cfg, lang)
    load_s = time.perf_counter() - started
    turns = sum(len(c.turns) for c in calls)
    customer = sum(t.role == CUSTOMER for c in calls for t in c.turns)
    tagger.tag(calls[0].turns)  # first call pays for lazy loads (encoder weights, lexicons)

    sentiment.score_text.cache_clear()
    wall, cpu = timed(lambda: tag_all(tagger, calls))
    # Later in a night: new texts, but words the process has met (their n-grams are cached).
    later = replicate(calls, 2)[len(calls):]
    sentiment.score_text.cache_clear()
    later_wall, later_cpu = timed(lambda: tag_all(tagger, later))

    sentiment.score_text.cache_clear()
    parts = by_component(tagger, calls)

    # Peers on the first peer_calls calls: one call per Tagger.tag, and one turn per batch
    # (acts still see whole calls: their batches never cut one).
    few = calls[:peer_calls]
    few_turns = sum(len(c.turns) for c in few)
    sentiment.score_text.cache_clear()
    per_call_wall, _ = timed(lambda: [tagger.tag(c.turns) for c in few])
    peer = Tagger(tagger.nlp, batch_size=1)
    sentiment.score_text.cache_clear()
    peer_wall, _ = timed(lambda: [peer.tag(c.turns) for c in few])
    sentiment.score_text.cache_clear()
    batched_wall, _ = timed(lambda: tag_all(tagger, few))

    figures = {
        "lang": lang,
        "intent_model": cfg.intent_model,
        "calls": len(calls),
        "turns": turns,
        "customer_turns": customer,
        "mean_chars": round(sum(len(t.text) for c in calls for t in c.turns) / max(turns, 1), 1),
        "load_s": round(load_s, 2),
        "turns_per_s": round(turns / wall, 1),
        "turns_per_cpu_s": round(turns / cpu, 1),
        "target_turns_per_s": TARGET,
        "ratio_to_target": round(turns / wall / TARGET, 3),
        "later_turns_per_s": round(turns / later_wall, 1),
        "later_turns_per_cpu_s": round(turns / later_cpu, 1),
        "later_ratio_to_target": round(turns / later_wall / TARGET, 3),
        "peer_turns": few_turns,
        "peer_per_call_turns_per_s": round(few_turns / per_call_wall, 1),
        "peer_unbatched_turns_per_s": round(few_turns / peer_wall, 1),
        "batched_same_turns_per_s": round(few_turns / batched_wall, 1),
        "ratio_to_per_call": round(per_call_wall / batched_wall, 2),
        "ratio_to_peer": round(peer_wall / batched_wall, 2),
        "components_ms_per_turn": {k: round(1000 * v / turns, 3) for k, v in parts.items()},
        "components_share": {k: round(v / sum(parts.values()), 3) for k, v in parts.items()},
    }
    print(f"[{lang}] intent model {cfg.intent_model}")
    print(f"[{lang}] {len(calls)} calls, {turns} turns ({customer} customer), {figures['mean_chars']} chars/turn; models loaded in {load_s:.1f} s")
    print(f"[{lang}] Tagger.tag_calls: {figures['turns_per_s']:.0f} turns/s wall, {figures['turns_per_cpu_s']:.0f} turns per CPU second")
    print(f"[{lang}] vs target {TARGET:.0f} turns/s: ratio {figures['ratio_to_target']:.3f}")
    print(f"[{lang}] the same dialogues again with new texts (later in a night: known words): "
          f"{figures['later_turns_per_s']:.0f} turns/s wall, {figures['later_turns_per_cpu_s']:.0f} per CPU second; "
          f"vs target: ratio {figures['later_ratio_to_target']:.3f}")
    print(
        f"[{lang}] vs peers on {len(few)} calls ({few_turns} turns): {figures['batched_same_turns_per_s']:.0f} turns/s against "
        f"{figures['peer_per_call_turns_per_s']:.0f} one call at a time (ratio {figures['ratio_to_per_call']:.2f}) and "
        f"{figures['peer_unbatched_turns_per_s']:.0f} one turn per batch (ratio {figures['ratio_to_peer']:.2f})"
    )
    for name, ms in sorted(figures["components_ms_per_turn"].items(), key=lambda kv: -kv[1]):
        print(f"[{lang}]   {name:<20} {ms:8.3f} ms/turn  {100 * figures['components_share'][name]:5.1f} %")
    return figures


def import_path(lang: str, calls, workers: int, cfg: TaggingConfig, chunk: int) -> dict:
    """Turns/s of the import path (tagging, redaction, scoring, events) in ``workers`` processes.

    ``processed_chunks`` as `callpipe import --workers N` runs it. End to end includes
    starting the workers and loading their models; steady state counts the turns of the
    chunks after each worker's first (which pays for the loading) over the time from the
    ``workers``-th result to the last.
    """
    config = Config(tagging=cfg)
    pieces = chunks(calls, chunk)
    arrivals = []
    start = time.perf_counter()
    for done, _ in processed_chunks(pieces, config, workers):
        arrivals.append((time.perf_counter(), sum(len(c.turns) for c in done)))
    total = time.perf_counter() - start
    turns = sum(n for _, n in arrivals)
    first_s = arrivals[workers - 1][0] - start if len(arrivals) >= workers else float("nan")
    steady_turns = sum(n for _, n in arrivals[workers:])
    steady_s = arrivals[-1][0] - arrivals[workers - 1][0] if len(arrivals) > workers else float("nan")
    figures = {
        "lang": lang, "workers": workers, "calls": len(calls), "turns": turns, "chunk_calls": chunk,
        "wall_s": round(total, 2), "start_up_s": round(first_s, 2),
        "end_to_end_turns_per_s": round(turns / total, 1),
        "steady_turns_per_s": round(steady_turns / steady_s, 1) if steady_s == steady_s else None,
    }
    print(f"[{lang}] import path, {workers} worker(s), {len(calls)} calls in chunks of {chunk}: "
          f"{figures['end_to_end_turns_per_s']:.0f} turns/s end to end ({total:.1f} s), {figures['steady_turns_per_s']} turns/s "
          f"steady state (after the first {workers} chunk(s), {first_s:.1f} s with start-up)")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="STC3 helpdesk folder (or a data folder holding it)")
    parser.add_argument("--calls", type=int, default=400, help="dialogues to tag (0: all)")
    parser.add_argument("--peer-calls", type=int, default=200, help="dialogues for the one-call-at-a-time and one-turn-per-batch peers")
    parser.add_argument("--zh", action="store_true", help="also measure the Chinese tagger")
    parser.add_argument("--intent-model", help="another intent model (name or path) in place of the default, to compare")
    parser.add_argument("--workers", default="1,2", help="worker counts for the import path (comma-separated; '' skips it)")
    parser.add_argument("--import-calls", type=int, default=0, help="dialogues for the import path (0: all)")
    parser.add_argument("--import-copies", type=int, default=8,
                        help="the import path's dialogues this many times, each copy's texts made distinct (a night's worth)")
    parser.add_argument("--chunk", type=int, default=64, help="calls per chunk for the import path")
    args = parser.parse_args()
    cfg = TaggingConfig(intent_model=args.intent_model) if args.intent_model else TaggingConfig()
    results = [run("en", dialogues(args.data, "en", args.calls), args.peer_calls, cfg)]
    if args.zh:
        results.append(run("zh", dialogues(args.data, "zh", args.calls), args.peer_calls, cfg))
    imports = []
    night = replicate(dialogues(args.data, "en", args.import_calls), args.import_copies)
    for workers in [int(w) for w in args.workers.split(",") if w.strip()]:
        imports.append(import_path("en", night, workers, cfg, args.chunk))
    if len(imports) > 1 and imports[0]["steady_turns_per_s"] and imports[-1]["steady_turns_per_s"]:
        best = imports[-1]
        print(f"[en] import path, {best['workers']} workers vs 1: steady-state ratio "
              f"{best['steady_turns_per_s'] / imports[0]['steady_turns_per_s']:.2f}; vs target {TARGET:.0f} turns/s: "
              f"ratio {best['steady_turns_per_s'] / TARGET:.3f}")
    machine = max(imports, key=lambda f: f["steady_turns_per_s"] or 0.0) if imports else None
    if machine and machine["steady_turns_per_s"]:
        one = results[0]
        print(f"[en] on this machine ({os.cpu_count()} cores), all components on: {machine['steady_turns_per_s']:.0f} turns/s "
              f"with {machine['workers']} worker(s) once their models are loaded (ratio to the target {machine['steady_turns_per_s'] / TARGET:.3f}), "
              f"{machine['end_to_end_turns_per_s']:.0f} end to end over {machine['calls']} calls (ratio {machine['end_to_end_turns_per_s'] / TARGET:.3f}); "
              f"one process {one['turns_per_s']:.0f} on a first pass, {one['later_turns_per_s']:.0f} later in a night")
    print(json.dumps({"benchmark": "tagging", "cpus": os.cpu_count(), "results": results, "import_path": imports}))


if __name__ == "__main__":
    main()
