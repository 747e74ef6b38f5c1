"""A turn's text from its Doc without rebuilding it.

``Doc.text`` joins the text of every token, building a Token object for each, on every
read; the components read it several times per turn, and for Chinese (one token per
character) those reads were a third of the tagging time. ``Tagger.docs`` keeps the
turn's text on ``doc._.turn_text``; a Doc made some other way falls back to ``Doc.text``.
"""

from __future__ import annotations

from spacy.tokens import Doc

if not Doc.has_extension("turn_text"):
    Doc.set_extension("turn_text", default=None)


def text_of(doc: Doc, ext=None) -> str:
    """``ext``: the Doc's ``doc._`` when the caller has it (each ``doc._`` builds a new accessor)."""
    text = (doc._ if ext is None else ext).turn_text
    return doc.text if text is None else text
