"""What of a call may be stored: the redacted transcript unless the config says otherwise.

Tagging finds PII in each turn (pipeline/tagging/entities.py) and gives every turn a
redacted text. With ``privacy.store_unredacted = false`` (the default) ``redact_call``
makes that the only text there is: each turn's text becomes its redacted text, each
word inside a PII span has its text replaced by the span's ``[TYPE]`` (timings kept,
so the timeline and talk-time figures stay right), and PII entities lose their text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .config import PrivacyConfig
from .records import Call, Turn, TurnTags, Word


def _word_spans(text: str, words: Sequence[Word]) -> list[tuple[int, int] | None]:
    """Where each word's text sits in the turn text (turn text is the words joined), in order."""
    spans: list[tuple[int, int] | None] = []
    pos = 0
    for w in words:
        token = w.text.strip()
        at = text.find(token, pos) if token else -1
        if at < 0:
            spans.append(None)
            continue
        spans.append((at, at + len(token)))
        pos = at + len(token)
    return spans


def redact_words(turn: Turn, pii: Sequence[dict]) -> tuple[Word, ...]:
    """The turn's words, those inside a PII span masked with its type.

    A word that cannot be placed in the text is masked too when the turn holds PII:
    storing it could leak what the redacted text hides.
    """
    if not pii:
        return turn.words
    out = []
    for word, span in zip(turn.words, _word_spans(turn.text, turn.words)):
        hit = None
        if span is None:
            hit = "[REDACTED]"
        else:
            for e in pii:
                if span[0] < e["end"] and e["start"] < span[1]:
                    hit = f"[{e['type']}]"
                    break
        out.append(word if hit is None else dataclasses.replace(word, text=hit))
    return tuple(out)


def redact_call(call: Call, tags: Sequence[TurnTags], cfg: PrivacyConfig) -> tuple[Call, list[TurnTags]]:
    """The call and tags to store: as they are with ``store_unredacted``, else redacted."""
    if cfg.store_unredacted:
        return call, list(tags)
    turns, new_tags = [], []
    for turn, tag in zip(call.turns, tags):
        if tag.redacted_text is None or not tag.pii_found:
            turns.append(turn)
            new_tags.append(tag)
            continue
        pii = [e for e in tag.entities if e.get("pii")]
        turns.append(dataclasses.replace(turn, text=tag.redacted_text, words=redact_words(turn, pii)))
        entities = tuple({**e, "text": f"[{e['type']}]"} if e in pii else e for e in tag.entities)
        new_tags.append(dataclasses.replace(tag, entities=entities))
    return dataclasses.replace(call, turns=tuple(turns)), new_tags
