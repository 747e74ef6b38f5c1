"""Decode any call recording to 16 kHz float32, one array per channel.

PyAV bundles FFmpeg's libraries, so wav (PCM 8/16/24/32-bit, float, mu-law,
a-law), flac, mp3, ogg/opus and m4a decode without a system ffmpeg.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


class AudioError(Exception):
    """A file could not be turned into audio; the message names the file and the problem."""


@dataclass(frozen=True)
class Audio:
    channels: np.ndarray  # shape (n_channels, n_samples), float32 in [-1, 1], 16 kHz
    source_rate: int
    codec: str

    @property
    def duration(self) -> float:
        return self.channels.shape[1] / SAMPLE_RATE

    @property
    def n_channels(self) -> int:
        return self.channels.shape[0]


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    from . import remote

    if remote.is_url(path):
        return remote.sha256(path, chunk)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except PermissionError:
        raise AudioError(f"{path}: permission denied") from None
    if size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")


def decode(path: str | Path, dtype=np.float32) -> Audio:
    """Decode ``path`` to 16 kHz channels without downmixing.

    ``dtype=np.float16`` halves the memory an hour-long call takes (230 MB instead of 460 MB
    for two channels); the transcription path turns each piece it decodes back into float32.
    """
    from . import remote

    if remote.is_url(path):
        # Read through the filesystem in blocks: the object is never held whole besides the samples.
        with remote.open_binary(path) as fh:
            return _decode(fh, path, dtype)
    path = Path(path)
    _check_readable(path)
    return _decode(str(path), path, dtype)


def _decode(source, path: str | Path, dtype) -> Audio:
    """Decode ``source`` (a local path or an open binary file); messages name ``path``."""
    import av  # heavy import kept at the edge

    try:
        container = av.open(source, metadata_errors="ignore")
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({_reason(exc)})") from None
    with container:
        if not container.streams.audio:
            raise AudioError(f"{path}: contains no audio stream")
        stream = container.streams.audio[0]
        if stream.codec_context is None:
            tag = getattr(stream, "codec_tag", "") or "unknown"
            raise AudioError(f"{path}: unsupported audio codec ({tag}); convert it to wav, flac, mp3, ogg or m4a")
        codec = stream.codec_context.name
        n_channels = stream.codec_context.channels or 0
        source_rate = stream.codec_context.sample_rate or 0
        if n_channels < 1:
            raise AudioError(f"{path}: audio stream reports no channels")
        # Planar float keeps the channels apart, so a stereo call can be split by role.
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name if stream.layout else None, rate=SAMPLE_RATE)
        samples = _Samples(_expected_samples(container, stream), dtype)
        try:
            for frame in container.decode(stream):
                frame.pts = None
                for out in resampler.resample(frame):
                    samples.append(out.to_ndarray())
            for out in resampler.resample(None):
                samples.append(out.to_ndarray())
        except (av.error.InvalidDataError, av.error.FFmpegError, ValueError) as exc:
            if not samples.count:
                raise AudioError(f"{path}: corrupt or unsupported audio ({_reason(exc)})") from None
            raise AudioError(f"{path}: audio is truncated or corrupt after {samples.count / SAMPLE_RATE:.1f} s ({_reason(exc)})") from None
    if not samples.count:
        raise AudioError(f"{path}: no audio samples (zero-length audio)")
    return Audio(channels=samples.array(), source_rate=source_rate, codec=codec)


def _expected_samples(container, stream) -> int:
    """Samples per channel at 16 kHz the header promises (0 when it does not say)."""
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / 1_000_000
    else:
        return 0
    return int(seconds * SAMPLE_RATE * 1.01) + SAMPLE_RATE


class _Samples:
    """Decoded blocks written into one growing array.

    Keeping the blocks in a list and joining them at the end would hold an hour-long call
    twice (about 0.9 GB for two channels); with the length from the header it is held once.
    """

    def __init__(self, expected: int, dtype=np.float32):
        self.expected = expected
        self.dtype = dtype
        self.buffer: np.ndarray | None = None
        self.count = 0

    def append(self, block: np.ndarray) -> None:
        n = block.shape[1]
        if self.buffer is None:
            self.buffer = np.empty((block.shape[0], max(self.expected, n, SAMPLE_RATE)), dtype=self.dtype)
        elif self.count + n > self.buffer.shape[1]:
            grown = np.empty((self.buffer.shape[0], max(2 * self.buffer.shape[1], self.count + n)), dtype=self.dtype)
            grown[:, : self.count] = self.buffer[:, : self.count]
            self.buffer = grown
        self.buffer[:, self.count : self.count + n] = block
        self.count += n

    def array(self) -> np.ndarray:
        return self.buffer[:, : self.count]


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # FFmpeg messages repeat the path; keep the part that says what went wrong.
    return text.split(": '")[0]
