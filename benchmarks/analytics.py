"""Scale check of the cross-call analytics: score, mine and suggest-index 100,000 calls.

    python benchmarks/analytics.py --data ../shared/data/text_stc3_helpdesk [--calls 100000]

The calls are the STC3 dialogues (English and Chinese) replicated with variation: each
copy gets the annotators' acts with some flipped, act confidences drawn at random, a
greeting varied on agent turns and ids in the text, an agent, a customer and a start
time; half of the copies get times (as a transcribed call would, at 150 words a minute,
with pauses, holds and overtalk). Then, timed one by one:

- score: ``analyze_call`` and ``call_events`` for every call (what each call costs after tagging);
- mine: PrefixSpan with lift over every call (``mine_patterns``), and the contiguous n-gram
  counter of the same calls as its peer;
- suggest-index: the next-best-action index over every agent reply (``SuggestIndex``).

Budget: 60 s and 2 GB on the project's 2-core machine. Prints each figure, the ratios to
the budget and to the peer, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.config import Config  # noqa: E402
from pipeline.importers import load_transcripts  # noqa: E402
from pipeline.records import Call, Turn, TurnTags  # noqa: E402
from pipeline.scoring import analyze_call, word_count  # noqa: E402
from pipeline.sequences import CallOutcome, call_events, frequent_ngrams, mine_patterns  # noqa: E402
from pipeline.suggest import SuggestIndex, moments  # noqa: E402

BUDGET_SECONDS = 60.0
BUDGET_BYTES = 2 * 1024**3
GREETINGS = ("", "Hello! ", "Dear customer, ", "Hi, ", "Thank you for contacting us. ")
GREETINGS_ZH = ("", "您好！", "亲，", "感谢您的反馈，")


def source_dialogues(data: Path) -> list[Call]:
    calls = []
    for name in ("train_data_en.json", "train_data_cn.json"):
        calls += [c for c in load_transcripts(data / name) if "reference" in c.metadata]
    return calls


def vary(base: Call, copy: int, rng: random.Random) -> tuple[Call, list[TurnTags]]:
    ref = base.metadata["reference"]
    greetings = GREETINGS_ZH if base.language == "zh" else GREETINGS
    timed = rng.random() < 0.5
    turns, tags, clock = [], [], 0.0
    for i, t in enumerate(base.turns):
        text = t.text
        if t.role == "agent":
            text = rng.choice(greetings) + text
        if rng.random() < 0.2:
            text += f" #{rng.randint(1000, 99999)}"
        start = end = 0.0
        if timed:
            gap = rng.choice((0.3, 0.8, 1.5, 3.0, 12.0)) if i else rng.uniform(0, 2)
            if i and rng.random() < 0.1:
                gap = -1.0  # overtalk
            start = max(0.0, clock + gap)
            end = start + max(1.0, word_count(text) / 2.5)
            clock = end
        turns.append(Turn(i, t.role, round(start, 2), round(end, 2), text))
        act = ref["acts"][i] if rng.random() > 0.05 else "other"
        tags.append(TurnTags(act=act, act_confidence=round(rng.uniform(0.5, 1.0), 3)))
    metadata = {"agent_id": f"agent{rng.randint(1, 50):02d}", "customer_id": f"cust{rng.randint(1, 60000)}",
                "start_time": f"2024-{rng.randint(1, 3):02d}-{rng.randint(1, 28):02d}T{rng.randint(8, 18):02d}:00"}
    if not timed:
        metadata["modality"] = "text"
    call = Call(f"{base.call_id}-{copy}", base.source, round(clock + 1.0, 2) if timed else 0.0, 2 if timed else 0,
                base.language, tuple(turns), metadata=metadata)
    return call, tags


def peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/text_stc3_helpdesk"))
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cfg = Config()
    rng = random.Random(args.seed)
    bases = source_dialogues(args.data)
    start = time.perf_counter()
    calls = [vary(bases[i % len(bases)], i // len(bases), rng) for i in range(args.calls)]
    built = time.perf_counter() - start
    print(f"{len(calls)} calls from {len(bases)} STC3 dialogues built in {built:.1f} s (not counted)")

    figures: dict[str, float] = {}
    cpu: dict[str, float] = {}
    load = os.getloadavg()[0]
    start, c0 = time.perf_counter(), time.process_time()
    outcomes, sequences = [], []
    for call, tags in calls:
        analysis = analyze_call(call, tags, cfg.scoring)
        events = call_events(call.turns, tags, cfg=cfg)
        outcomes.append(CallOutcome(tuple(e.label for e in events), analysis.issue_state == "resolved", analysis.efficiency_score))
        sequences.append((call, tags, analysis, [e.label for e in events if e.kind == "turn"]))
    figures["score_s"], cpu["score_s"] = time.perf_counter() - start, time.process_time() - c0

    start, c0 = time.perf_counter(), time.process_time()
    patterns = mine_patterns(outcomes, cfg.sequences.min_support, cfg.sequences.max_length, cfg.sequences.pattern_top_k)
    figures["mine_s"], cpu["mine_s"] = time.perf_counter() - start, time.process_time() - c0
    start = time.perf_counter()
    frequent_ngrams(((o.labels, o.resolved) for o in outcomes), cfg.sequences.min_n, cfg.sequences.max_n, cfg.sequences.top_k)
    figures["ngrams_peer_s"] = time.perf_counter() - start

    start, c0 = time.perf_counter(), time.process_time()
    index = SuggestIndex(cfg.suggest)
    for call, tags, analysis, labels in sequences:
        roles = [t.role for t in call.turns]
        for m in moments(call.call_id, labels, roles, [t.act for t in tags], [t.text for t in call.turns],
                         analysis.issue_state == "resolved", cfg.suggest.context):
            index.add(m)
    figures["suggest_index_s"], cpu["suggest_index_s"] = time.perf_counter() - start, time.process_time() - c0

    total = figures["score_s"] + figures["mine_s"] + figures["suggest_index_s"]
    total_cpu = sum(cpu.values())
    peak = peak_bytes()
    print(f"load average when the timing started: {load:.1f} on {os.cpu_count()} cores (other work slows wall time; CPU time is this process's own)")
    print(f"{'step':<16} {'wall s':>8} {'CPU s':>8} {'calls/s':>10}")
    for key, name in (("score_s", "score"), ("mine_s", "mine"), ("suggest_index_s", "suggest-index")):
        print(f"{name:<16} {figures[key]:>8.2f} {cpu[key]:>8.2f} {len(calls) / figures[key]:>10,.0f}")
    print(f"{'total':<16} {total:>8.2f} {total_cpu:>8.2f} {len(calls) / total:>10,.0f}   "
          f"(wall {total / BUDGET_SECONDS:.0%}, CPU {total_cpu / BUDGET_SECONDS:.0%} of the {BUDGET_SECONDS:.0f} s budget)")
    print(f"peak memory {peak / 1024**2:,.0f} MiB ({peak / BUDGET_BYTES:.0%} of 2 GiB; includes the generated calls)")
    print(f"PrefixSpan (gaps, lift, {len(patterns)} patterns kept) vs contiguous n-grams: "
          f"{figures['mine_s']:.2f} s vs {figures['ngrams_peer_s']:.2f} s (ratio {figures['mine_s'] / figures['ngrams_peer_s']:.2f})")
    print(f"suggest index: {index.total[0]:,} agent replies, {len(index.acts):,} contexts")
    result = {"calls": len(calls), **{k: round(v, 3) for k, v in figures.items()}, "total_s": round(total, 3),
              "total_cpu_s": round(total_cpu, 3), **{f"{k[:-2]}_cpu_s": round(v, 3) for k, v in cpu.items()},
              "load_average": round(load, 2),
              "peak_mib": round(peak / 1024**2, 1), "within_budget": total <= BUDGET_SECONDS and peak <= BUDGET_BYTES,
              "patterns": len(patterns), "replies_indexed": index.total[0]}
    print(json.dumps(result, sort_keys=True))
    return 0 if result["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
