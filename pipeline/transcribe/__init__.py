"""Speech recognition: one small interface, one module per Whisper backend."""

from __future__ import annotations

from .base import EnginePlan, Transcriber, TranscriptionError, load_transcriber, plan_engine, resolve_device

__all__ = ["EnginePlan", "Transcriber", "TranscriptionError", "load_transcriber", "plan_engine", "resolve_device"]
