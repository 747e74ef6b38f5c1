"""Batch throughput with 1 and 2 worker processes on the same calls, measured in one run.

    python benchmarks/batch_workers.py [--calls 8] [--seconds 30]

Cuts distinct stretches of the shipped stereo call into separate files, runs the whole
batch (decode, ASR, tagging, scoring, store) with --workers 1 and --workers 2 into fresh
output directories, and prints audio seconds per wall second for each and their ratio.
With N workers and no cpu_threads set, each worker gets cores // N CTranslate2 threads.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.audio import SAMPLE_RATE, decode
from pipeline.batch import run_batch
from pipeline.config import Config, ReportConfig

ROOT = Path(__file__).resolve().parent.parent
CALL = ROOT / "audio_samples" / "aws_lca_call40_stereo.flac"


def write_clips(folder: Path, calls: int, seconds: float) -> float:
    import av

    channels = decode(CALL).channels
    total = channels.shape[1] / SAMPLE_RATE
    starts = np.linspace(0, total - seconds, calls)
    for i, start in enumerate(starts):
        pcm = (channels[:, int(start * SAMPLE_RATE) : int((start + seconds) * SAMPLE_RATE)] * 32767).astype(np.int16)
        with av.open(str(folder / f"call{i:03d}.wav"), "w") as out:
            stream = out.add_stream("pcm_s16le", rate=SAMPLE_RATE, layout="stereo")
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm.T).reshape(1, -1), format="s16", layout="stereo")
            frame.sample_rate = SAMPLE_RATE
            for packet in stream.encode(frame):
                out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    return calls * seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    cfg = Config(report=ReportConfig(enabled=False))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        audio = write_clips(tmp / "in", args.calls, args.seconds)
        speeds = {}
        for workers in (1, 2):
            started = time.perf_counter()
            summary = run_batch([tmp / "in"], tmp / f"out{workers}", cfg, workers=workers, log_json=True)
            wall = time.perf_counter() - started
            assert summary.processed == args.calls, summary.to_dict()
            speeds[workers] = audio / wall
        print(f"\n{args.calls} calls, {audio:.0f} s of audio")
        print(f"{'workers':>8} {'audio s / wall s':>18}")
        for workers, speed in speeds.items():
            print(f"{workers:>8} {speed:>18.2f}")
        print(f"ratio 2 workers / 1 worker: {speeds[2] / speeds[1]:.2f}")


if __name__ == "__main__":
    main()
