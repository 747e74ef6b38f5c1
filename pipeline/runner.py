"""Per-call processing: one input through every stage, from audio file to records."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from . import audio as audio_mod
from . import remote
from .audio import Audio, AudioError
from .config import Config
from .inputs import CallInput
from .privacy import redact_call
from .records import AGENT, CUSTOMER, UNKNOWN, Call
from .scoring import analyze_call
from .sequences import call_events
from .transcribe import load_transcriber
from .turns import build_turns


def make_call_id(path: Path | str, sha256: str) -> str:
    """Readable and unique: the file stem, plus a content hash prefix so equal stems never collide."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", remote.pure(path).stem).strip("_") or "call"
    return f"{stem[:60]}-{sha256[:8]}"


def is_dual_mono(channels: np.ndarray) -> bool:
    """Two channels carrying the same signal (a mono recording saved as stereo)."""
    if channels.shape[0] != 2:
        return False
    # Lossy coding leaves small differences between the copies, so compare shapes, not samples.
    left, right = channels[:, ::4].astype(np.float64)
    if left.std() < 1e-6 or right.std() < 1e-6:
        return left.std() < 1e-6 and right.std() < 1e-6
    return float(np.corrcoef(left, right)[0, 1]) > 0.99


def channel_roles(audio: Audio, agent_channel: int, customer_channel: int | None = None) -> list[tuple[np.ndarray, int, str]]:
    """(samples, channel index, role) for each channel that gets transcribed.

    Calls with more than two channels need a channel map (agent and customer
    channel) from the manifest; guessing would mislabel every turn.
    """
    channels = audio.channels
    n = channels.shape[0]
    if n > 2 and customer_channel is None:
        raise AudioError(f"{n} channels: say which carry the agent and the customer (agent_channel, customer_channel in a manifest)")
    if n == 1 or (n == 2 and customer_channel is None and is_dual_mono(channels)):
        return [(channels[0], 0, UNKNOWN)]
    if customer_channel is None:
        customer_channel = 1 - agent_channel
    for name, ch in (("agent_channel", agent_channel), ("customer_channel", customer_channel)):
        if not 0 <= ch < n:
            raise AudioError(f"{name} {ch} does not exist: the file has {n} channel(s)")
    if agent_channel == customer_channel:
        raise AudioError(f"agent_channel and customer_channel are both {agent_channel}")
    return [(channels[agent_channel], agent_channel, AGENT), (channels[customer_channel], customer_channel, CUSTOMER)]


class CallProcessor:
    """Runs one file through every per-call stage. Models load on first use, once per process."""

    def __init__(self, cfg: Config):
        self.cfg = cfg

    @property
    def transcriber(self):
        return load_transcriber(self.cfg.asr)

    def tagger(self, language: str):
        from .tagging import load_tagger

        return load_tagger(self.cfg.tagging, language)

    def model_versions(self, languages: Iterable[str] = ("en",)) -> dict[str, str]:
        versions = {"asr": f"{self.transcriber.name}:{self.transcriber.model_version}"}
        for lang in sorted(set(languages)):
            versions.update(self.tagger(lang).model_versions)
        return versions

    def process(self, item: CallInput, sha: str):
        """Every per-call stage for one input whose content hash is ``sha``."""
        path = item.path
        decoded = audio_mod.decode(path, dtype=np.float16)
        agent_channel = self.cfg.audio.agent_channel if item.agent_channel is None else item.agent_channel
        parts = channel_roles(decoded, agent_channel, item.customer_channel)
        from .transcribe.call import transcribe_call

        # All channels in one batched pass; echo removed (stereo) or speakers separated (mono).
        heard = transcribe_call(self.transcriber, parts, self.cfg, agent_channel, item.language)
        language = heard.language
        turns = build_turns(heard.segments, heard.roles, self.cfg.turns.split_pause, self.cfg.turns.max_pause)
        call = Call(
            call_id=item.call_id or make_call_id(path, sha),
            source=path if remote.is_url(path) else str(path.resolve()),
            duration=round(decoded.duration, 3),
            channels=decoded.n_channels,
            language=language,
            turns=turns,
            audio_sha256=sha,
            metadata={**item.metadata, "codec": decoded.codec, "source_rate": decoded.source_rate, **heard.metadata},
        )
        tags = self.tagger(language).tag(call.turns)
        call, tags = redact_call(call, tags, self.cfg.privacy)
        analysis = analyze_call(call, tags, self.cfg.scoring)
        events = call_events(call.turns, tags, cfg=self.cfg)
        return call, tags, analysis, events
