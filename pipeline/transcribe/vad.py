"""Speech regions (Silero VAD, as bundled with faster-whisper) shared by both backends.

Decoding only speech is faster and removes most silence hallucinations; using the
same regions in both backends keeps their outputs comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
CHUNK_SECONDS = 30  # Whisper's input window
DETECT_SECONDS = 60  # language is told from the first speech found in this much of each channel


VAD_BLOCK_SECONDS = 300  # VAD runs on 5-minute blocks so an hour-long channel needs no hour-sized buffers


@dataclass(frozen=True)
class Chunk:
    """Up to 30 s of one channel's speech: VAD regions glued together, cut out only when decoded."""

    channel: int
    source: np.ndarray
    regions: tuple[tuple[int, int], ...]
    offset: float  # seconds into the channel's speech-only timeline
    duration: float

    @property
    def audio(self) -> np.ndarray:
        # The source may be float16 (long calls); the models want float32.
        return (np.concatenate([self.source[a:b] for a, b in self.regions]) if self.regions else self.source[:0]).astype(np.float32, copy=False)


def speech_regions(audio: np.ndarray, batched: bool) -> list[dict]:
    """Sample ranges that hold speech.

    Batched decoding cuts at short pauses (160 ms) into pieces of at most 30 s so each
    fits one window; sequential decoding keeps faster-whisper's defaults (2 s pauses).
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if batched:
        options = VadOptions(max_speech_duration_s=CHUNK_SECONDS, min_silence_duration_ms=160)
    else:
        options = VadOptions()
    block = VAD_BLOCK_SECONDS * SAMPLE_RATE
    regions: list[dict] = []
    for offset in range(0, len(audio), block):
        for r in get_speech_timestamps(audio[offset : offset + block].astype(np.float32, copy=False), options):
            regions.append({"start": r["start"] + offset, "end": r["end"] + offset})
    return regions


def fixed_regions(n_samples: int) -> list[dict]:
    """Without VAD: consecutive 30 s windows over the whole channel."""
    step = CHUNK_SECONDS * SAMPLE_RATE
    return [{"start": s, "end": min(s + step, n_samples)} for s in range(0, n_samples, step)]


def first_speech(channels, vad_filter: bool, seconds: float = CHUNK_SECONDS) -> np.ndarray:
    """The opening speech of the call's channels in one window of at most ``seconds``, float32.

    Each channel gets an equal share, and a channel with less speech leaves the rest to
    the others: the language is then told from one encoder pass that hears both parties.
    """
    speeches = []
    for audio, _channel in channels:
        head = audio[: DETECT_SECONDS * SAMPLE_RATE]
        regions = speech_regions(head, batched=True) if vad_filter else fixed_regions(head.shape[0])
        speeches.append(np.concatenate([head[r["start"] : r["end"]] for r in regions]) if regions else head[:0])
    budget = int(seconds * SAMPLE_RATE)
    parts = []
    for i, speech in enumerate(sorted(speeches, key=len)):
        take = min(len(speech), budget // (len(speeches) - i))
        parts.append(speech[:take])
        budget -= take
    return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)


def chunks_for(audio: np.ndarray, regions: list[dict], channel: int, max_seconds: float) -> list[Chunk]:
    """Glue consecutive regions into chunks of at most ``max_seconds`` (faster-whisper's ``collect_chunks`` rule)."""
    limit = max_seconds * SAMPLE_RATE
    chunks: list[Chunk] = []
    current: list[tuple[int, int]] = []
    length = total = 0
    for r in regions:
        size = r["end"] - r["start"]
        if current and length + size > limit:
            chunks.append(Chunk(channel, audio, tuple(current), total / SAMPLE_RATE, length / SAMPLE_RATE))
            total += length
            current, length = [], 0
        current.append((r["start"], r["end"]))
        length += size
    if current and length:
        chunks.append(Chunk(channel, audio, tuple(current), total / SAMPLE_RATE, length / SAMPLE_RATE))
    return chunks


class TimeMap:
    """Maps times on the speech-only timeline back to the channel's own clock."""

    def __init__(self, regions: list[dict]):
        from faster_whisper.vad import SpeechTimestampsMap

        self._map = SpeechTimestampsMap(regions, SAMPLE_RATE) if regions else None

    def word_times(self, start: float, end: float) -> tuple[float, float]:
        if self._map is None:
            return start, end
        # Both ends from the region holding the word's middle, so a word never straddles a cut.
        index = self._map.get_chunk_index((start + end) / 2)
        return self._map.get_original_time(start, index), self._map.get_original_time(end, index)

    def span(self, start: float, end: float) -> tuple[float, float]:
        if self._map is None:
            return start, end
        return self._map.get_original_time(start), self._map.get_original_time(end, is_end=True)
