"""The tagging stage as a spaCy pipeline: one Doc per turn, its context and results in its fields (turnstate.py).

Components are added by factory name, in order: ``callpipe_acts`` (acts.py), then
``callpipe_intent`` (intents.py; it reads ``doc._.role`` and only tags customer
turns), ``callpipe_sentiment`` (sentiment.py) and ``callpipe_pii`` (entities.py: entities,
PII and the redacted text; ``Tagger.tag`` completes it over the whole call). No statistical
spaCy model is needed: a blank English or Chinese pipeline
provides tokenisation, and our components bring their own scikit-learn models.
"""

from __future__ import annotations

import functools
import gc
import importlib
from collections.abc import Sequence

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from ..config import TaggingConfig
from ..records import ROLES, UNKNOWN, Turn, TurnTags
from . import acts as _acts  # noqa: F401  (registers the callpipe_acts factory)
from . import entities as _entities  # registers callpipe_pii
from . import sentiment as _sentiment  # noqa: F401  (registers callpipe_sentiment)
from .acts import relative_position
from .turnstate import start_state, state

try:  # registers the callpipe_intent factory
    importlib.import_module(f"{__package__}.intents")
except ModuleNotFoundError as exc:  # the intents module is optional; anything else is a real error
    if exc.name != f"{__package__}.intents":
        raise

ACTS_COMPONENT = "callpipe_acts"
INTENT_COMPONENT = "callpipe_intent"
SENTIMENT_COMPONENT = "callpipe_sentiment"
PII_COMPONENT = "callpipe_pii"


def is_chinese(lang: str) -> bool:
    return lang.split("-")[0].lower() == "zh"


def acts_model_for(configured: str, lang: str) -> str:
    """The default model ``acts-en`` becomes ``acts-zh`` for Chinese calls.

    Any other name or path is used as configured, whatever the language.
    """
    if is_chinese(lang) and configured == TaggingConfig().acts_model:
        return "acts-zh"
    return configured


def build_nlp(cfg: TaggingConfig, lang: str, intents: bool = True) -> Language:
    """The pipeline for a config and language; ``intents=False`` leaves out the intent component."""
    nlp = spacy.blank("zh" if is_chinese(lang) else "en")
    nlp.add_pipe(ACTS_COMPONENT, config={"model": acts_model_for(cfg.acts_model, lang)})
    if intents and Language.has_factory(INTENT_COMPONENT):
        nlp.add_pipe(INTENT_COMPONENT, config={"model": cfg.intent_model, "threshold": cfg.intent_threshold})
    nlp.add_pipe(SENTIMENT_COMPONENT)
    nlp.add_pipe(PII_COMPONENT, config={"products": list(cfg.products), "pii_types": list(cfg.pii_types)})
    return nlp


class Tagger:
    """Tags the turns of one call: an act for every turn, an intent for customer turns."""

    def __init__(self, nlp: Language, batch_size: int = 256):
        self.nlp = nlp
        self.batch_size = batch_size
        self.model_versions: dict[str, str] = {}
        for name, component in nlp.pipeline:
            version = getattr(component, "version", None) or getattr(component, "model_version", None)
            if version:
                self.model_versions[name.removeprefix("callpipe_")] = str(version)

    def docs(self, turns: Sequence[Turn]) -> list[Doc]:
        """One Doc per turn with its conversational context set (nothing run yet)."""
        n = len(turns)
        docs = []
        for i, turn in enumerate(turns):
            doc = self.nlp.make_doc(turn.text)
            start_state(
                doc,
                text=turn.text,
                # Position in the sequence given, not Turn.index: the models learnt consecutive indexes.
                turn_index=i,
                position=relative_position(i, n),
                role=turn.role if turn.role in ROLES else UNKNOWN,
                prev_text=turns[i - 1].text if i > 0 else "",
                next_text=turns[i + 1].text if i + 1 < n else "",
            )
            docs.append(doc)
        return docs

    def tag(self, turns: Sequence[Turn]) -> list[TurnTags]:
        return self.tag_calls([turns])[0]

    def tag_calls(self, calls: Sequence[Sequence[Turn]]) -> list[list[TurnTags]]:
        """Tags for the turns of each call; many calls go through ``nlp.pipe`` together.

        Batches hold several calls (the acts component never cuts one in two), so the
        scikit-learn models run once per batch rather than once per call: with a few
        turns per call their fixed cost per call was most of the tagging time.
        """
        docs = [doc for turns in calls for doc in self.docs(turns)]
        docs = list(self.nlp.pipe(docs, batch_size=self.batch_size))
        out, start = [], 0
        for turns in calls:
            call_docs = docs[start:start + len(turns)]
            start += len(turns)
            if self.nlp.has_pipe(PII_COMPONENT):
                # Numbers read out across turns and names said in another turn need the whole call.
                _entities.link_call(call_docs)
            out.append([_tags(doc) for doc in call_docs])
        return out


def _tags(doc: Doc) -> TurnTags:
    fields = state(doc)
    return TurnTags(
        act=fields["act"],
        act_confidence=float(fields["act_confidence"]),
        intent=fields["intent"],
        intent_confidence=float(fields["intent_confidence"] or 0.0),
        sentiment=float(fields["sentiment"]),
        entities=tuple(fields["entities"]),
        redacted_text=fields["redacted_text"],
        pii_found=bool(fields["pii_found"]),
    )


@functools.lru_cache(maxsize=8)
def load_tagger(cfg: TaggingConfig, lang: str) -> Tagger:
    """The tagger for a config and ASR language; built (and its models loaded) once per process."""
    tagger = Tagger(build_nlp(cfg, lang), batch_size=cfg.batch_size)
    # The libraries and models loaded by now are some 300,000 objects that live as long as
    # the process. Every full collection walked them all (0.2 s each, one every few
    # thousand turns, a tenth of the tagging time); frozen, collections see only what
    # tagging allocates. The price: an object that is in a reference cycle now and is
    # dropped later is not reclaimed (reference counting still frees everything else), so
    # the collection first clears what is garbage already.
    gc.collect()
    gc.freeze()
    return tagger
