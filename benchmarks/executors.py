"""Batch throughput of the local executor (1 and 2 workers) and of Ray (1 and 2 actors), in one run.

    python benchmarks/executors.py [--calls 6] [--seconds 20]

Cuts distinct stretches of the shipped stereo call into separate files (as batch_workers.py
does) and runs `callpipe run` on them once per configuration, each in a fresh process, into
fresh output directories. Ray runs start their own local Ray instance with every core of
this machine. For each it prints:

- end to end: audio seconds per wall second of the whole command (imports, model loading,
  worker start-up, the calls, the store, cross-call analytics);
- steady state: audio seconds per second between the first and the last stored call, which
  leaves out start-up;
- for Ray, the start-up: starting the local instance, then starting the actors (each loads
  the models);
- Ray's overhead per call: the steady-state seconds per call of Ray with 1 actor minus those
  of the local executor with 1 worker (scheduling, shipping records back to the driver).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batch_workers import write_clips  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [("local", 1), ("local", 2), ("ray", 1), ("ray", 2)]


def run(inputs: Path, out: Path, executor: str, workers: int) -> dict:
    cmd = [sys.executable, "-m", "pipeline.cli", "run", str(inputs), "--out", str(out), "--no-report", "--log-json",
           "--workers", str(workers), "--executor", executor]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    wall = time.perf_counter() - started
    events = []
    for line in proc.stdout.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    calls = [e for e in events if e["event"] == "call"]
    first, last = calls[0], calls[-1]
    steady_audio = sum(e["duration"] for e in calls[1:])
    steady_time = last["time"] - first["time"]
    result = {
        "wall": wall,
        "audio": sum(e["duration"] for e in calls),
        "calls": len(calls),
        "steady_speed": steady_audio / steady_time if steady_time > 0 else float("nan"),
        "steady_per_call": steady_time / (len(calls) - 1) if len(calls) > 1 else float("nan"),
    }
    for e in events:
        if e["event"] == "executor":
            result["ray_connect"] = e["connect_seconds"]
        elif e["event"] == "workers":
            result["ray_workers"] = e["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    try:
        import ray  # noqa: F401
    except ImportError:
        raise SystemExit('the Ray rows need Ray: pip install "callpipe[ray]"')
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        write_clips(tmp / "in", args.calls, args.seconds)
        results = {}
        for executor, workers in CONFIGS:
            results[executor, workers] = r = run(tmp / "in", tmp / f"out-{executor}{workers}", executor, workers)
            assert r["calls"] == args.calls, r
            print(f"done: {executor} x{workers} in {r['wall']:.1f} s", file=sys.stderr, flush=True)
    audio = results["local", 1]["audio"]
    print(f"\n{args.calls} calls, {audio:.0f} s of audio, {os.cpu_count()} CPU cores")
    print(f"{'executor':>9} {'workers':>8} {'end-to-end audio s/s':>21} {'steady audio s/s':>17} {'ray start-up s':>15}")
    for (executor, workers), r in results.items():
        startup = f"{r['ray_connect']:.1f} + {r['ray_workers']:.1f}" if executor == "ray" else "-"
        print(f"{executor:>9} {workers:>8} {r['audio'] / r['wall']:>21.2f} {r['steady_speed']:>17.2f} {startup:>15}")
    for executor in ("local", "ray"):
        one, two = results[executor, 1], results[executor, 2]
        print(f"{executor}: 2 workers / 1 worker: end to end {one['wall'] / two['wall']:.2f}, "
              f"steady {two['steady_speed'] / one['steady_speed']:.2f}")
    print(f"ray / local, 2 workers: end to end {results['local', 2]['wall'] / results['ray', 2]['wall']:.2f}, "
          f"steady {results['ray', 2]['steady_speed'] / results['local', 2]['steady_speed']:.2f}")
    overhead = results["ray", 1]["steady_per_call"] - results["local", 1]["steady_per_call"]
    print(f"Ray overhead per call (steady state, 1 actor vs 1 local worker): {overhead:+.2f} s "
          f"({results['ray', 1]['steady_per_call']:.2f} vs {results['local', 1]['steady_per_call']:.2f} s per call)")
    print("Ray start-up = starting the local instance + starting the actors (models loaded), in seconds.")


if __name__ == "__main__":
    main()
