"""Cross-call analytics for the pages: suggested responses, call drivers, sequential patterns
with lift, agent scorecards.

Each comes from its own module or store table; a store written before one of them
existed, or an install without it, still gets its pages, with that section marked
"not available" (None here).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..store import Store


def _optional(name: str) -> ModuleType | None:
    """pipeline.<name>, or None where it is not part of this install."""
    try:
        return importlib.import_module(f"pipeline.{name}")
    except ImportError:
        return None


def _read(store: Store, method: str) -> list[dict] | None:
    reader = getattr(store, method, None)
    return reader() if reader is not None else None


def suggestions(store: Store, call_id: str, k: int) -> dict[int, list[dict]] | None:
    """Customer turn index -> up to k suggested agent responses (see pipeline.suggest)."""
    module = _optional("suggest")
    return module.suggestions_for_call(store, call_id, k) if module is not None else None


def drivers(store: Store) -> list[dict] | None:
    """Call drivers, largest first: {language, label, keywords, volume, share, resolution_rate, ...}."""
    return _read(store, "drivers")


def sequence_patterns(store: Store) -> list[dict] | None:
    """Sequential patterns with their support and lift on resolution and score."""
    return _read(store, "sequence_patterns")


def scorecards(store: Store) -> dict[str, dict] | None:
    """Agent id -> scorecard, with "patterns" where the agent differs from the team."""
    module = _optional("scorecards")
    return module.agent_scorecards(store) if module is not None else None
