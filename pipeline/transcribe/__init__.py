"""Speech recognition: one small interface, one module per Whisper backend."""

from __future__ import annotations

from .base import Transcriber, TranscriptionError, load_transcriber, resolve_device

__all__ = ["Transcriber", "TranscriptionError", "load_transcriber", "resolve_device"]
