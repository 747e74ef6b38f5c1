"""Peak memory of transcribing one long call: an hour built from the sample call.

The shared 2-channel call (245 s) is repeated to ``--minutes`` and written as a telephone
WAV (8 kHz, 16-bit, 2 channels) into a temporary folder. A fresh Python process then
decodes it and runs callpipe's transcription path on it (``transcribe_call``: VAD, both
channels batched, word timestamps, guards, echo removal) on the embedded model, and
reports its peak resident memory (``ru_maxrss``) and speed. With ``--whole-call`` the
child runs every per-call stage a batch runs (``CallProcessor.process``: transcription,
turns, tagging, redaction, scoring, events), as a nightly run would for that call.

    python benchmarks/asr_memory.py [--minutes 60] [--threads 2] [--whole-call] [--set asr.backend=openai]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "audio_samples" / "aws_lca_call40_stereo.flac"
LIMIT_MB = 1536

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from pipeline.audio import decode
from pipeline.config import load_config, parse_override
from pipeline.inputs import CallInput
from pipeline.runner import CallProcessor, channel_roles
from pipeline.transcribe.call import transcribe_call

cfg = load_config(None, [parse_override(o) for o in json.loads(sys.argv[3])])
processor = CallProcessor(cfg)
transcriber = processor.transcriber
path = Path(sys.argv[2])
started = time.perf_counter()
if sys.argv[4] == "call":
    processor.tagger("en")
    started = time.perf_counter()
    call, _tags, _analysis, _events = processor.process(CallInput(path, call_id="long"), "0" * 64)
    duration, words = call.duration, sum(len(t.text.split()) for t in call.turns)
else:
    audio = decode(path)
    heard = transcribe_call(transcriber, channel_roles(audio, cfg.audio.agent_channel), cfg)
    duration, words = audio.duration, sum(len(s.words) for s in heard.segments)
wall = time.perf_counter() - started
print(json.dumps({
    "stage": sys.argv[4],
    "audio_seconds": duration,
    "wall_seconds": wall,
    "words": words,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def build_input(minutes: float, out: Path) -> float:
    """Repeat the sample call to ``minutes`` and write it as an 8 kHz 16-bit stereo WAV; returns seconds."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from pipeline.audio import decode

    call = decode(SOURCE).channels[:, ::2]  # 16 kHz -> 8 kHz; the source is 8 kHz, so nothing above 4 kHz is lost
    target = int(minutes * 60 * 8000)
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        written = 0
        while written < target:
            piece = call[:, : target - written]
            wav.writeframes((np.clip(piece.T, -1, 1) * 32767).astype("<i2").tobytes())
            written += piece.shape[1]
    return target / 8000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="callpipe config override")
    parser.add_argument("--whole-call", action="store_true", help="every per-call stage, not only transcription")
    args = parser.parse_args(argv)
    overrides = [f"asr.cpu_threads={args.threads}", "asr.device=cpu", *args.overrides]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long_call.wav"
        seconds = build_input(args.minutes, path)
        print(f"built {path.name}: {seconds / 60:.0f} min, 8 kHz 16-bit stereo, {path.stat().st_size / 1e6:.0f} MB", file=sys.stderr)
        child = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(path), json.dumps(overrides), "call" if args.whole_call else "asr"], capture_output=True, text=True)
    if child.returncode != 0:
        print(child.stderr, file=sys.stderr)
        return 1
    result = json.loads(child.stdout.strip().splitlines()[-1])
    result.update(overrides=overrides, limit_mb=LIMIT_MB, within_limit=result["peak_rss_mb"] < LIMIT_MB)
    print(f"{result['audio_seconds'] / 60:.0f} min call ({'every per-call stage' if args.whole_call else 'transcription'}): peak RSS {result['peak_rss_mb']:.0f} MB "
          f"(limit {LIMIT_MB} MB), {result['audio_seconds'] / result['wall_seconds']:.1f} audio-s per wall-s, {result['words']} words")
    print(json.dumps(result))
    return 0 if result["within_limit"] else 1


if __name__ == "__main__":
    sys.exit(main())
