"""Per-turn tagging: issue-state acts for every turn, intents for customer turns (spaCy + scikit-learn)."""

from __future__ import annotations

from .nlp import Tagger, load_tagger

__all__ = ["Tagger", "load_tagger"]
