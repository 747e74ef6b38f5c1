"""The interface every ASR backend implements, engine selection, and the cached loader."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..config import AsrConfig
from ..records import Transcript

BACKENDS = ("ctranslate2", "openai")


class TranscriptionError(Exception):
    """The ASR engine could not be loaded or failed on an input."""


class Transcriber(Protocol):
    """Turns 16 kHz float32 audio into Transcripts (segments, words, times, confidences, language)."""

    name: str
    model_version: str

    def transcribe(self, audio: np.ndarray, channel: int = 0) -> Transcript: ...

    def transcribe_channels(self, channels: Sequence[tuple[np.ndarray, int]], language: str | None = None) -> list[Transcript]:
        """All channels of one call, one Transcript each, sharing one language decision.

        ``language`` is the call's own (from a manifest); it overrides ``asr.language``.
        """
        ...


def language_code(name: str) -> str:
    """A Whisper language code for a code, a regional code or an English name: zh-CN, Mandarin -> zh."""
    from whisper.tokenizer import LANGUAGES, TO_LANGUAGE_CODE

    text = name.strip().lower()
    code = TO_LANGUAGE_CODE.get(text, text.replace("_", "-").split("-")[0])
    if code not in LANGUAGES:
        raise TranscriptionError(f"unknown language {name!r}: use a Whisper language code such as en or zh")
    return code


def fixed_language(call_language: str | None, configured: str, multilingual: bool, model: str) -> str | None:
    """The language to decode in without detection, or None to detect it.

    An English-only model decodes English; asking it for another language is an error,
    not a silent English transcript of Mandarin speech.
    """
    wanted = call_language or configured
    code = language_code(wanted) if wanted else None
    if multilingual:
        return code
    if code not in (None, "en"):
        raise TranscriptionError(
            f"language {wanted!r} needs a multilingual model, and {model!r} is English-only "
            '(set asr.multilingual_model = "base", from callpipe[multilingual], or a multilingual asr.model)'
        )
    return "en"


def cuda_device_counts() -> tuple[int, int]:
    """(GPUs CTranslate2 sees, GPUs torch sees); a broken CUDA install counts as none."""
    ct2 = torch_count = 0
    try:
        import ctranslate2

        ct2 = int(ctranslate2.get_cuda_device_count())
    except Exception:
        pass
    try:
        import torch

        torch_count = int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:
        pass
    return ct2, torch_count


def resolve_device(requested: str) -> str:
    """'auto' becomes 'cuda' when CTranslate2 or torch sees a GPU, else 'cpu'."""
    if requested != "auto":
        return requested
    return "cuda" if any(cuda_device_counts()) else "cpu"


@dataclass(frozen=True)
class EnginePlan:
    """What will actually run, decided from the config and the machine."""

    backend: str
    device: str
    device_index: tuple[int, ...]
    compute_type: str
    batched: bool
    batch_size: int


def _faster_whisper_installed() -> bool:
    return importlib.util.find_spec("faster_whisper") is not None


def plan_engine(cfg: AsrConfig) -> EnginePlan:
    """Backend, device, GPUs, precision and batching for ``cfg``.

    ``auto`` backend: CTranslate2 (faster-whisper) whenever it is installed; it is the
    faster engine on CPU (int8) and on CUDA (float16, batched); openai-whisper otherwise.
    On CUDA the CTranslate2 backend loads one model replica per visible GPU.
    """
    device = resolve_device(cfg.device)
    backend = cfg.backend
    if backend == "auto":
        backend = "ctranslate2" if _faster_whisper_installed() and not cfg.model.endswith(".pt") else "openai"
    if backend not in BACKENDS:
        raise TranscriptionError(f"unknown ASR backend {cfg.backend!r}; choose one of auto, {', '.join(BACKENDS)}")
    ct2_gpus, torch_gpus = cuda_device_counts() if device == "cuda" else (0, 0)
    if backend == "ctranslate2":
        compute_type = cfg.compute_type if cfg.compute_type != "auto" else ("float16" if device == "cuda" else "int8")
        device_index = tuple(range(ct2_gpus)) if device == "cuda" and ct2_gpus > 1 else (0,)
        batched = cfg.batched
    else:
        compute_type = cfg.compute_type if cfg.compute_type != "auto" else ("float16" if device == "cuda" else "float32")
        if compute_type not in ("float16", "float32"):
            raise TranscriptionError(f"asr.compute_type {compute_type!r}: the openai backend runs float16 or float32 only")
        if compute_type == "float16" and device == "cpu":
            raise TranscriptionError("asr.compute_type float16: openai-whisper runs float16 on CUDA only; use float32 on CPU")
        device_index = (0,)
        # Same 30 s speech pieces as batched CTranslate2, decoded one after another (no batch API).
        batched = cfg.batched
    return EnginePlan(backend, device, device_index, compute_type, batched, cfg.batch_size)


@functools.lru_cache(maxsize=4)
def load_transcriber(cfg: AsrConfig) -> Transcriber:
    """Load the configured backend once per process (configs are frozen, hence hashable).

    The English-only embedded model is paired with ``asr.multilingual_model`` when that is
    installed, so calls in other languages are not written out as English (routing.py).
    """
    if routes_languages(cfg):
        from .routing import LanguageRouter

        english = load_engine(cfg)
        other = load_engine(dataclasses.replace(cfg, model=cfg.multilingual_model, multilingual_model=""))
        return LanguageRouter(english, other, cfg.language, cfg.language_check_confidence)
    return load_engine(cfg)


def routes_languages(cfg: AsrConfig) -> bool:
    """True when the embedded English model is paired with an available multilingual one."""
    from .models import EMBEDDED, JOINED_MODELS, joined_model_available

    other = cfg.multilingual_model
    if cfg.model != EMBEDDED or not other:
        return False
    # A packaged model counts only when its extra is installed; a folder or name is the user's choice.
    return joined_model_available(other) if other in JOINED_MODELS else True


def load_engine(cfg: AsrConfig) -> Transcriber:
    """One backend with one model, as configured."""
    plan = plan_engine(cfg)
    if plan.backend == "ctranslate2":
        from .ctranslate2 import FasterWhisperTranscriber

        return FasterWhisperTranscriber(cfg, plan)
    from .openai import OpenAIWhisperTranscriber

    return OpenAIWhisperTranscriber(cfg, plan)
