"""Writing real audio files for tests, in any codec PyAV bundles."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.audio import SAMPLE_RATE, decode

from .conftest import STEREO_CALL


def write_audio(path: Path, samples: np.ndarray, rate: int, codec: str = "pcm_s16le", fmt: str = "s16", layout: str = "mono") -> Path:
    """``samples`` is (channels, n) for planar formats, (1, n * channels) interleaved for packed ones."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(samples, format=fmt, layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def interleave(channels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(channels.T).reshape(1, -1)


_CALL = None


def call_excerpt(start: float, end: float) -> np.ndarray:
    """Both channels of the shipped stereo call between two times, 16 kHz float32."""
    global _CALL
    if _CALL is None:
        _CALL = decode(STEREO_CALL).channels
    return _CALL[:, int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]


def write_excerpt(path: Path, start: float, end: float) -> Path:
    pcm = (call_excerpt(start, end) * 32767).astype(np.int16)
    return write_audio(path, interleave(pcm), SAMPLE_RATE, "pcm_s16le", "s16", "stereo")


def write_excerpts(folder: Path, excerpts) -> Path:
    """``clip0.wav``, ``clip1.wav`` ... in ``folder``, one per (start, end) stretch of the call."""
    for i, (start, end) in enumerate(excerpts):
        write_excerpt(folder / f"clip{i}.wav", start, end)
    return folder
