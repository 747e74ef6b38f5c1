"""Next best action and suggested responses, from what agents did in historic calls.

A *moment* is an agent's reply to a customer turn in a historic call: what had just
happened (the last few turn events, the "context"), the act the agent chose, the words
used, and whether the call went on to be resolved. Given a conversation so far, we
look up the moments with the same context (the longest one with enough history behind
it, then shorter ones), and suggest:

- next agent acts, ranked by the resolution rate of the calls where agents chose that
  act at such a moment (smoothed toward the context's overall rate), with support;
- concrete responses taken from historic calls that went on to be resolved: those whose
  customer turn reads most like the current one, ranked by the resolution rate the
  response led to (smoothed the same way), with support (moments that used it).

The index is built from the store after every run and saved in it, so a review page
asks SQLite for one context at a time instead of rebuilding anything.
"""

from __future__ import annotations

import json
import re
import weakref
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .config import SuggestConfig
from .records import AGENT, CUSTOMER

_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[^\W\u3400-\u9fff\uf900-\ufaff]+")
RETRIEVAL_POOL = 10  # responses considered per suggestion shown: the most similar ones


def normalize_response(text: str) -> str:
    """Responses that differ only in case, spacing or numbers (ids, phone numbers) are one response."""
    return _SPACE.sub(" ", _DIGITS.sub("#", text.lower())).strip()


def tokens(text: str) -> set[str]:
    """Words, and for Chinese the characters and character pairs: enough to compare two short texts."""
    text = text.lower()
    chars = _CJK.findall(text)
    return set(_WORD.findall(text)) | set(chars) | {a + b for a, b in zip(chars, chars[1:])}


@dataclass
class Moment:
    context: tuple[str, ...]  # turn-event labels before the agent's reply, oldest first
    act: str
    response: str
    customer_text: str
    resolved: bool
    call_id: str
    turn_index: int


def moments(call_id: str, labels: Sequence[str], roles: Sequence[str], acts: Sequence[str], texts: Sequence[str],
            resolved: bool, context: int) -> Iterable[Moment]:
    """The agent replies in one call: each first agent turn after a customer turn."""
    for j in range(1, len(roles)):
        if roles[j] == AGENT and roles[j - 1] == CUSTOMER:
            yield Moment(tuple(labels[max(0, j - context):j]), acts[j], texts[j], texts[j - 1], resolved, call_id, j)


@dataclass
class _Response:
    text: str
    act: str
    support: int = 0
    resolved: int = 0
    customer_texts: list[str] = field(default_factory=list)
    call_ids: list[str] = field(default_factory=list)


class SuggestIndex:
    """Counts per context (every suffix of it up to ``cfg.context`` events): acts and responses."""

    MAX_EXAMPLES = 5  # customer texts and call ids kept per response

    def __init__(self, cfg: SuggestConfig):
        self.cfg = cfg
        self.acts: dict[tuple[str, ...], dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        self.responses: dict[tuple[str, ...], dict[str, _Response]] = defaultdict(dict)
        self.total = [0, 0]  # moments, resolved

    def add(self, m: Moment) -> None:
        self.total[0] += 1
        self.total[1] += m.resolved
        norm = normalize_response(m.response)
        context = m.context
        for c in range(len(context) + 1):
            key = context[len(context) - c:] if c else ()
            counts = self.acts[key][m.act]
            counts[0] += 1
            counts[1] += m.resolved
            if not norm:
                continue
            per = self.responses[key]
            r = per.get(norm)
            if r is None:
                r = per[norm] = _Response(m.response, m.act)
            r.support += 1
            r.resolved += m.resolved
            # Example texts from resolved calls first: they are what a suggestion is matched on.
            if (m.resolved or not self.cfg.resolved_only) and len(r.customer_texts) < self.MAX_EXAMPLES:
                r.customer_texts.append(m.customer_text)
                r.call_ids.append(m.call_id)

    # The lookups a ranking needs; StoreIndex answers the same from SQLite.

    def act_counts(self, key: tuple[str, ...]) -> dict[str, tuple[int, int]]:
        return {a: (n, r) for a, (n, r) in self.acts.get(key, {}).items()}

    def response_rows(self, key: tuple[str, ...]) -> list[dict]:
        return [
            {"text": r.text, "act": r.act, "support": r.support, "resolved": r.resolved, "customer_texts": r.customer_texts, "call_ids": r.call_ids}
            for r in self.responses.get(key, {}).values() if r.resolved > 0 or not self.cfg.resolved_only
        ]

    def rows_for_store(self) -> tuple[list[tuple], list[tuple]]:
        """(act rows, response rows) to persist; each context keeps its best ``cfg.max_responses`` responses."""
        act_rows = [(json.dumps(list(key), ensure_ascii=False), act, n, r)
                    for key, per in self.acts.items() for act, (n, r) in per.items()]
        resp_rows = []
        for key, per in self.responses.items():
            kept = sorted((r for r in per.values() if r.resolved > 0 or not self.cfg.resolved_only),
                          key=lambda r: (-r.resolved, -r.support, r.text))
            ctx = json.dumps(list(key), ensure_ascii=False)
            for r in kept[: self.cfg.max_responses]:
                resp_rows.append((ctx, r.text, r.act, r.support, r.resolved, json.dumps(r.customer_texts, ensure_ascii=False), json.dumps(r.call_ids)))
        return act_rows, resp_rows


def _smoothed(resolved: int, n: int, base: float, prior: float) -> float:
    return (resolved + prior * base) / (n + prior) if n + prior > 0 else 0.0


class _Pool:
    """A context's candidate responses, with their customer turns as TF-IDF vectors.

    IDF comes from the customer turns of the pool itself, so words every customer writes
    there ("hello", "the") count for little when matching the current turn.
    """

    def __init__(self, rows: list[dict]):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.rows = rows
        texts, owner = [], []
        for i, row in enumerate(rows):
            for t in row["customer_texts"] or [""]:
                texts.append(t)
                owner.append(i)
        self.owner = np.asarray(owner, dtype=int)
        self.vectorizer = None
        if texts and any(tokens(t) for t in texts):
            self.vectorizer = TfidfVectorizer(analyzer=lambda t: sorted(tokens(t)), sublinear_tf=True)
            self.matrix = self.vectorizer.fit_transform(texts)

    def similarities(self, text: str) -> np.ndarray:
        """Per row: the highest cosine similarity between ``text`` and one of its customer turns."""
        out = np.zeros(len(self.rows))
        if self.vectorizer is None or not self.rows:
            return out
        per_text = (self.matrix @ self.vectorizer.transform([text]).T).toarray().ravel()
        np.maximum.at(out, self.owner, per_text)
        return out


def _candidates(index, key: tuple[str, ...]) -> _Pool:
    cache = index.__dict__.setdefault("_pools", {})
    if key not in cache:
        cache[key] = _Pool(index.response_rows(key))
    return cache[key]


def choose_context(index, context: Sequence[str], cfg: SuggestConfig) -> tuple[tuple[str, ...], dict[str, tuple[int, int]]]:
    """The longest suffix of ``context`` with at least ``cfg.min_support`` historic moments (else the empty one)."""
    context = tuple(context)[-cfg.context:] if cfg.context else ()
    for c in range(len(context), 0, -1):
        key = context[len(context) - c:]
        counts = index.act_counts(key)
        if sum(n for n, _ in counts.values()) >= cfg.min_support:
            return key, counts
    return (), index.act_counts(())


def suggest(index, context: Sequence[str], customer_text: str, k: int, cfg: SuggestConfig, exclude_call: str | None = None) -> dict:
    """Top-k next agent acts and responses for the moment after ``context`` (turn-event labels).

    Each act: {act, resolution_probability, support, share} (share = how often agents chose
    it at such a moment). Each response: {text, act?, score (= resolution_probability),
    resolution_probability, support, resolved, similarity, example_call_id}.
    """
    key, counts = choose_context(index, context, cfg)
    moments_here = sum(n for n, _ in counts.values())
    base = sum(r for _, r in counts.values()) / moments_here if moments_here else 0.0
    acts = [
        {"act": act, "resolution_probability": round(_smoothed(r, n, base, cfg.prior), 4), "support": n,
         "share": round(n / moments_here, 4)}
        for act, (n, r) in counts.items() if n >= min(cfg.min_support, moments_here)
    ]
    acts.sort(key=lambda a: (-a["resolution_probability"], -a["support"], a["act"]))
    pool = _candidates(index, key)
    sims = pool.similarities(customer_text)
    candidates = []
    for sim, row in zip(sims, pool.rows):
        if exclude_call is not None and row["call_ids"] == [exclude_call] * len(row["call_ids"]):
            continue  # a call's own reply is not a suggestion for it
        candidates.append((float(sim), row))
    candidates.sort(key=lambda c: (-c[0], -c[1]["resolved"], c[1]["text"]))
    pool = candidates[: RETRIEVAL_POOL * k]
    responses = [
        {"text": row["text"], "act": row.get("act"),
         "score": round(_smoothed(row["resolved"], row["support"], base, cfg.prior), 4),
         "resolution_probability": round(_smoothed(row["resolved"], row["support"], base, cfg.prior), 4),
         "support": row["support"], "resolved": row["resolved"], "similarity": round(sim, 4),
         "example_call_id": (row["call_ids"] or [None])[0]}
        for sim, row in pool
    ]
    responses.sort(key=lambda r: (-r["resolution_probability"], -r["similarity"], r["text"]))
    return {"context": list(key), "moments": moments_here, "acts": acts[:k], "responses": responses[:k]}


# --- the index in the store ---------------------------------------------------------------------

def build_index(store, cfg: SuggestConfig, resolved: dict[str, bool] | None = None) -> SuggestIndex:
    """The index over every call in the store (``resolved``: call id -> outcome; default the issue state)."""
    index = SuggestIndex(cfg)
    for call_id, labels, roles, acts, texts, is_resolved in store.turn_sequences():
        if resolved is not None:
            is_resolved = resolved.get(call_id, is_resolved)
        for m in moments(call_id, labels, roles, acts, texts, is_resolved, cfg.context):
            index.add(m)
    return index


def save_index(store, cfg: SuggestConfig, resolved: dict[str, bool] | None = None) -> SuggestIndex:
    index = build_index(store, cfg, resolved)
    store.save_suggest_index(*index.rows_for_store())
    return index


class StoreIndex:
    """The saved index, read one context at a time."""

    def __init__(self, store):
        self.store = store

    def act_counts(self, key: tuple[str, ...]) -> dict[str, tuple[int, int]]:
        return self.store.suggest_act_counts(json.dumps(list(key), ensure_ascii=False))

    def response_rows(self, key: tuple[str, ...]) -> list[dict]:
        return self.store.suggest_responses(json.dumps(list(key), ensure_ascii=False))


_STORE_INDEXES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def store_index(store) -> StoreIndex:
    """One StoreIndex per open store, so a report's many pages share each context's pool."""
    index = _STORE_INDEXES.get(store)
    if index is None:
        index = _STORE_INDEXES[store] = StoreIndex(store)
    return index


def suggestions_for_call(store, call_id: str, k: int = 3, cfg: SuggestConfig | None = None) -> dict[int, list[dict]]:
    """Per customer turn of a stored call (turn index -> list), the top-k suggested agent responses.

    Each suggestion is a plain dict (see ``suggest``), with the top next acts under
    "next_acts" on the first one of each turn. The call's own replies are left out.
    """
    cfg = cfg or SuggestConfig()
    found = store.call_turn_sequence(call_id)
    if found is None:
        raise KeyError(call_id)
    labels, roles, texts, indexes = found
    index = store_index(store)
    out: dict[int, list[dict]] = {}
    for i, role in enumerate(roles):
        if role != CUSTOMER:
            continue
        result = suggest(index, labels[: i + 1], texts[i], k, cfg, exclude_call=call_id)
        items = [dict(r) for r in result["responses"]]
        for item in items:
            item["context"] = result["context"]
        if items:
            items[0]["next_acts"] = result["acts"]
        out[indexes[i]] = items
    return out


def suggest_for_transcript(store, turns: Sequence[tuple[str, str]], lang: str, k: int, cfg) -> dict:
    """Suggestions for a conversation so far, given as (role, text) pairs: it is tagged first."""
    from .records import Turn
    from .sequences import call_events
    from .tagging import load_tagger

    call_turns = [Turn(i, role, 0.0, 0.0, text) for i, (role, text) in enumerate(turns)]
    tags = load_tagger(cfg.tagging, lang).tag(call_turns)
    labels = [e.label for e in call_events(call_turns, tags)]
    last_customer = next((t for r, t in reversed(turns) if r == CUSTOMER), turns[-1][1] if turns else "")
    return suggest(store_index(store), labels, last_customer, k, cfg.suggest)


def suggest_for_call_turn(store, call_id: str, turn_index: int, k: int, cfg: SuggestConfig) -> dict:
    """Suggestions for a stored call as it stood after turn ``turn_index``."""
    found = store.call_turn_sequence(call_id)
    if found is None:
        raise KeyError(call_id)
    labels, roles, texts, indexes = found
    if turn_index not in indexes:
        raise KeyError(f"{call_id} has no turn {turn_index}")
    i = indexes.index(turn_index)
    customer = next((texts[j] for j in range(i, -1, -1) if roles[j] == CUSTOMER), texts[i])
    return suggest(store_index(store), labels[: i + 1], customer, k, cfg, exclude_call=call_id)
