"""Everything between decoded channels and role-labelled segments for one call.

All channels go through the transcriber together (so batches fill across them and
the call gets one language); then a 2-channel call loses the echo of each party in
the other's channel, and a mono call is split into its speakers and their roles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..config import Config
from ..records import UNKNOWN, Segment, Transcript
from .base import Transcriber


@dataclass(frozen=True)
class HeardCall:
    segments: tuple[Segment, ...]
    roles: dict[int, str]
    """Role of each segment channel (for a separated mono call: agent_channel = agent, the other = customer)."""
    language: str
    metadata: dict = field(default_factory=dict)


def call_language(transcripts: Sequence[Transcript]) -> str:
    """The language with the most speech; a channel without speech still votes, barely."""
    votes: dict[str, float] = {}
    for t in transcripts:
        speech = sum(s.end - s.start for s in t.segments)
        votes[t.language] = votes.get(t.language, 0.0) + speech + 1e-6
    return max(votes, key=votes.get) if votes else "en"


def transcribe_call(
    transcriber: Transcriber,
    parts: Sequence[tuple[np.ndarray, int, str]],
    cfg: Config,
    agent_channel: int = 0,
    language: str | None = None,
) -> HeardCall:
    """``parts``: (samples, channel, role) per channel, as ``runner.channel_roles`` gives them;
    ``language``: the call's language when known (a manifest column), else detected."""
    transcripts = transcriber.transcribe_channels([(samples, channel) for samples, channel, _role in parts], language)
    language = call_language(transcripts)
    if language == "zh" and cfg.asr.chinese_script == "simplified":
        from .chinese import simplified_transcript

        transcripts = [simplified_transcript(t) for t in transcripts]
    by_channel = {channel: t for (_s, channel, _r), t in zip(parts, transcripts)}
    roles = {channel: role for _s, channel, role in parts}
    metadata: dict = {"asr_engine": f"{transcriber.name}:{getattr(transcriber, 'model_version', '')}"}
    if len(parts) == 2 and cfg.asr.crosstalk_filter:
        from ..crosstalk import remove_crosstalk

        by_channel, report = remove_crosstalk(by_channel, {ch: s for s, ch, _r in parts}, margin_db=cfg.asr.crosstalk_margin_db)
        metadata["crosstalk_dropped_words"] = sum(report.dropped_words.values())
    segments = tuple(s for channel in sorted(by_channel) for s in by_channel[channel].segments)
    if len(parts) == 1 and parts[0][2] == UNKNOWN and cfg.diarize.enabled and segments:
        from ..diarize import separate_roles

        result = separate_roles(parts[0][0], segments, language, cfg.diarize, agent_channel)
        segments, roles = result.segments, result.roles
        metadata["diarization"] = result.summary
    return HeardCall(segments=segments, roles=roles, language=language, metadata=metadata)
