"""Plain typed records that flow between the stages.

Every stage takes and returns these; only the edges (audio decoding, the store,
writers, the CLI) touch files. They are frozen so a stage cannot silently change
what an earlier stage produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field

AGENT = "agent"
CUSTOMER = "customer"
UNKNOWN = "unknown"
ROLES = (AGENT, CUSTOMER, UNKNOWN)

# Per-turn issue-state acts (STC3 nugget types).
ACTS = ("problem_stated", "solution_offered", "solution_confirmed", "other")
# Per-call issue states.
ISSUE_STATES = ("open", "solution_offered", "resolved", "unresolved", "escalated")


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str
    probability: float


@dataclass(frozen=True)
class Segment:
    """One ASR segment from one audio channel."""

    channel: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0


@dataclass(frozen=True)
class Transcript:
    """What an ASR backend returns for one channel."""

    segments: tuple[Segment, ...]
    language: str
    language_probability: float = 1.0


@dataclass(frozen=True)
class Turn:
    """A stretch of speech by one party, in conversation order."""

    index: int
    role: str
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    channel: int | None = None

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(frozen=True)
class TurnTags:
    """What the tagging stage says about one turn."""

    act: str = "other"
    act_confidence: float = 0.0
    intent: str | None = None  # only customer turns get an intent
    intent_confidence: float = 0.0
    sentiment: float = 0.0
    """In [-1, 1]: negative to positive."""
    entities: tuple = ()
    """Plain dicts {type, text, start, end, pii}: offsets in the turn's text (see tagging/entities.py)."""
    redacted_text: str | None = None
    """The turn's text with each PII entity replaced by its type ([PHONE], [NAME], ...)."""
    pii_found: bool = False


@dataclass(frozen=True)
class Call:
    """One conversation after transcription: metadata plus its turns."""

    call_id: str
    source: str
    duration: float
    channels: int
    language: str
    turns: tuple[Turn, ...]
    audio_sha256: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """One step of a call seen as a sequence: who did what, when."""

    index: int
    time: float
    role: str
    act: str
    intent: str | None = None
    kind: str = "turn"
    """turn (one per turn: act and intent), or a moment between turns: hold, interruption,
    sentiment_up, sentiment_down, entity (then ``act`` names it: the entity type, ...)."""

    @property
    def label(self) -> str:
        parts = [self.role, self.act]
        if self.intent:
            parts.append(self.intent)
        return ":".join(parts)


@dataclass(frozen=True)
class CallAnalysis:
    """Per-call outcome and efficiency figures."""

    issue_state: str
    intent: str | None
    handle_time: float
    talk_time: dict[str, float]
    non_talk_time: float
    turn_count: int
    efficiency_score: float
    score_breakdown: dict[str, float | None]
    flags: tuple[str, ...] = ()
    """What a reviewer should look at: no_speech, unresolved, escalated, long_silence."""
    modality: str = "audio"
    """audio (timed turns) or text (a transcript without times: turn-based equivalents)."""
    metrics: dict = field(default_factory=dict)
    """Service-efficiency figures (talk ratio, interruptions, talk speed, time to first
    solution, sentiment change, ...); see scoring.service_metrics."""
    score_explanation: tuple[str, ...] = ()
    """One line per score component: its value, weight and share of the score."""
