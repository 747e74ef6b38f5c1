"""ASR throughput: callpipe's transcription path against plain faster-whisper and openai-whisper.

One process, the same decoded audio (both channels of a 2-channel call; by default the
shared sample call), the same model weights (the embedded tiny.en; openai-whisper gets
them converted, see docs/asr.md) and the same number of CPU threads for every engine:

- callpipe: ``transcribe_call`` as ``callpipe run`` calls it (VAD, both channels batched
  together, word timestamps, silence/loop guards, echo removal), with the config given.
- faster-whisper sequential: ``WhisperModel.transcribe`` per channel, library defaults.
- faster-whisper batched: ``BatchedInferencePipeline.transcribe`` per channel, library defaults.
- openai-whisper CLI path: ``whisper.transcribe`` per channel with the ``whisper`` command's
  defaults (beam 5, best of 5, temperature fallback, fp32 on CPU); the audio is handed over
  decoded because the CLI's loader needs an ffmpeg binary.

Library defaults do not produce word timestamps, which callpipe always does;
``--peer-words`` makes the peers produce them too (same output, more work for them).
Each engine runs ``--repeat`` times, interleaved, and its fastest run counts.

    python benchmarks/asr.py [--audio FILE] [--threads 2] [--repeat 2] [--set asr.beam_size=5] [--peer-words]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_AUDIO = ROOT / "audio_samples" / "aws_lca_call40_stereo.flac"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, default=DEFAULT_AUDIO, help="a 2-channel call (default: the shared sample call)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every engine")
    parser.add_argument("--repeat", type=int, default=2, help="runs per engine; the fastest counts")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="callpipe config override, e.g. asr.beam_size=5")
    parser.add_argument("--peer-words", action="store_true", help="peers compute word timestamps too")
    parser.add_argument("--skip", action="append", default=[], choices=["sequential", "openai"], help="leave out a slow peer")
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    import whisper
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    from pipeline.audio import decode
    from pipeline.config import load_config, parse_override
    from pipeline.records import AGENT, CUSTOMER
    from pipeline.transcribe import load_transcriber
    from pipeline.transcribe.call import transcribe_call
    from pipeline.transcribe.models import cache_dir, embedded_model_path, resolve_openai_checkpoint
    from pipeline.transcribe.openai import load_checkpoint

    torch.set_num_threads(args.threads)
    overrides = [parse_override(f"asr.cpu_threads={args.threads}"), parse_override("asr.device=cpu")]
    cfg = load_config(None, overrides + [parse_override(o) for o in args.overrides])
    call = decode(args.audio)
    if call.n_channels != 2:
        parser.error(f"{args.audio}: need a 2-channel call, got {call.n_channels} channel(s)")
    channels = [np.ascontiguousarray(call.channels[i]) for i in range(2)]
    seconds = sum(len(c) for c in channels) / 16000

    transcriber = load_transcriber(cfg.asr)
    fw = WhisperModel(str(embedded_model_path()), device="cpu", compute_type="int8", cpu_threads=args.threads)
    pipe = BatchedInferencePipeline(fw)
    checkpoint, _label = resolve_openai_checkpoint("embedded", cache_dir(cfg.asr.cache_dir))
    ow = load_checkpoint(checkpoint, "cpu")
    words = args.peer_words

    def run_callpipe():
        heard = transcribe_call(transcriber, [(channels[0], 0, AGENT), (channels[1], 1, CUSTOMER)], cfg)
        return sum(len(s.words) for s in heard.segments)

    def run_sequential():
        return sum(len(list(fw.transcribe(c, word_timestamps=words)[0])) for c in channels)

    def run_batched():
        return sum(len(list(pipe.transcribe(c, word_timestamps=words)[0])) for c in channels)

    def run_openai():
        return sum(
            len(whisper.transcribe(ow, c, verbose=None, beam_size=5, best_of=5, fp16=False, word_timestamps=words)["segments"])
            for c in channels
        )

    engines = {"callpipe": run_callpipe, "faster-whisper batched": run_batched}
    if "sequential" not in args.skip:
        engines["faster-whisper sequential"] = run_sequential
    if "openai" not in args.skip:
        engines["openai-whisper CLI path"] = run_openai

    # Warm-up on 10 s: lazy model parts (VAD, numba kernels) load outside the timing.
    short = [c[: 10 * 16000] for c in channels]
    saved = list(channels)
    channels[:] = short
    for fn in engines.values():
        fn()
    channels[:] = saved

    best: dict[str, float] = {}
    cpu: dict[str, float] = {}  # CPU seconds of the process: less sensitive to other work on the machine
    for _ in range(args.repeat):
        for name, fn in engines.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            fn()
            wall, used = time.perf_counter() - started, time.process_time() - cpu_started
            best[name] = min(best.get(name, wall), wall)
            cpu[name] = min(cpu.get(name, used), used)
            print(f"  {name}: {wall:.1f} s wall, {used:.1f} s CPU", file=sys.stderr, flush=True)

    speed = {name: seconds / wall for name, wall in best.items()}
    print(f"audio: {args.audio.name}, 2 channels, {seconds:.0f} s in total; {args.threads} threads; "
          f"callpipe beam {cfg.asr.beam_size}, batched {cfg.asr.batched}; peers at library defaults"
          + (" + word timestamps" if words else " (no word timestamps)"))
    for name, value in speed.items():
        print(f"{name:<28} {value:6.1f} audio-s per wall-s ({best[name]:.1f} s; {seconds / cpu[name]:.1f} audio-s per CPU-s)")
    ratios = {f"callpipe / {name}": speed["callpipe"] / value for name, value in speed.items() if name != "callpipe"}
    cpu_ratios = {f"callpipe / {name}": cpu[name] / cpu["callpipe"] for name in cpu if name != "callpipe"}
    for name, value in ratios.items():
        print(f"{name:<40} {value:5.2f}x wall, {cpu_ratios[name]:5.2f}x CPU")
    print(json.dumps({
        "audio": args.audio.name, "audio_seconds": round(seconds, 1), "threads": args.threads,
        "callpipe": {"beam_size": cfg.asr.beam_size, "batched": cfg.asr.batched, "batch_size": cfg.asr.batch_size},
        "peer_word_timestamps": words,
        "audio_seconds_per_wall_second": {k: round(v, 2) for k, v in speed.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "cpu_seconds": {k: round(v, 1) for k, v in cpu.items()},
        "cpu_ratios": {k: round(v, 3) for k, v in cpu_ratios.items()},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
