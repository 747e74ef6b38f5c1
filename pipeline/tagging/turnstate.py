"""What the tagging components read and write on a turn's Doc: one dict in ``doc.user_data``.

The components read a turn's context (its text, role, position and neighbours' texts)
and write their results several times per turn. Through spaCy's ``doc._`` every use
builds an accessor object and every value is looked up through it, which was a tenth
of the tagging time; the components use the dict itself (``state``). Each field is
also a Doc extension (``doc._.act``, ``doc._.role``, ..., the text as
``doc._.turn_text``), read and written through the same dict.

The text is kept because ``Doc.text`` joins every token's text on each read; a Doc made
some other way (``nlp("...")``) starts from ``Doc.text``.
"""

from __future__ import annotations

from spacy.tokens import Doc

from ..records import UNKNOWN

KEY = "callpipe"
# Fields and their defaults. The defaults match TurnTags' so an untagged Doc reads as "other".
FIELDS = {
    "text": None,
    "role": UNKNOWN,
    "position": 0.0,  # relative: 0 = first turn, 1 = last
    "turn_index": 0,
    "prev_text": "",
    "next_text": "",
    "act": "other",
    "act_confidence": 0.0,
    "intent": None,
    "intent_confidence": 0.0,
    "sentiment": 0.0,
    "entities": (),
    "redacted_text": None,
    "pii_found": False,
    "pii_types": (),
}
EXTENSION_NAMES = {name: "turn_text" if name == "text" else name for name in FIELDS}


def state(doc: Doc) -> dict:
    """The Doc's fields (made from ``Doc.text`` and the defaults on first use)."""
    fields = doc.user_data.get(KEY)
    if fields is None:
        fields = doc.user_data[KEY] = {**FIELDS, "text": doc.text}
    return fields


def start_state(doc: Doc, **values) -> dict:
    """A new Doc's fields: the defaults, then ``values``."""
    fields = doc.user_data[KEY] = {**FIELDS, **values}
    return fields


def _register(field: str, extension: str) -> None:
    if Doc.has_extension(extension):
        getter = Doc.get_extension(extension)[2]
        if getattr(getter, "__module__", None) != __name__:
            # Its values would live apart from the fields the components read and write.
            raise RuntimeError(f"the Doc extension {extension!r} is already registered by other code; "
                               "callpipe's tagging components keep a turn's fields under that name")

    def set_value(doc: Doc, value) -> None:
        # No text (None) means the Doc's own, as for a Doc made without one.
        state(doc)[field] = doc.text if field == "text" and value is None else value

    Doc.set_extension(extension, getter=lambda doc: state(doc)[field], setter=set_value, force=True)


for _field, _extension in EXTENSION_NAMES.items():
    _register(_field, _extension)
