"""The interface every ASR backend implements, and the cached loader that picks one."""

from __future__ import annotations

import functools
from typing import Protocol

import numpy as np

from ..config import AsrConfig
from ..records import Transcript


class TranscriptionError(Exception):
    """The ASR engine could not be loaded or failed on an input."""


class Transcriber(Protocol):
    """Turns one channel of 16 kHz float32 audio into a Transcript."""

    name: str
    model_version: str

    def transcribe(self, audio: np.ndarray, channel: int = 0) -> Transcript: ...


def resolve_device(requested: str) -> str:
    """'auto' becomes 'cuda' when CTranslate2 or torch sees a GPU, else 'cpu'."""
    if requested != "auto":
        return requested
    try:
        import ctranslate2

        if ctranslate2.get_cuda_device_count() > 0:
            return "cuda"
    except Exception:  # a broken CUDA install must not stop a CPU run
        pass
    try:
        import torch

        if torch.cuda.is_available():
            return "cuda"
    except Exception:
        pass
    return "cpu"


@functools.lru_cache(maxsize=4)
def load_transcriber(cfg: AsrConfig) -> Transcriber:
    """Load the configured backend once per process (configs are frozen, hence hashable)."""
    if cfg.backend == "ctranslate2":
        from .ctranslate2 import FasterWhisperTranscriber

        return FasterWhisperTranscriber(cfg)
    raise TranscriptionError(f"unknown ASR backend {cfg.backend!r}")
