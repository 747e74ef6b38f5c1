"""Next best action and suggested responses, from what agents did in historic calls.

A *moment* is an agent's reply to a customer turn in a historic call: what had just
happened (the last few turn events, the "context"), the act the agent chose, the words
used, and whether the call went on to be resolved. Given a conversation so far:

- **next acts**: P(act | context) from a back-off model over the context's suffixes
  (Witten-Bell interpolation: the full context, then shorter ones, then all moments),
  times the resolution rate the act led to at such moments (smoothed toward the shorter
  context's rate with ``cfg.prior`` moments of weight): the chance that agents do this
  next *and* the call ends resolved. Each act also shows its probability, resolution
  rate and support (moments in the chosen context).
- **responses**: the historic moments whose customer turn reads most like the current
  one (TF-IDF over character n-grams, so Chinese needs no word segmenter) are the
  neighbours, found among all moments; each candidate response (by default one used in
  a call that went on to be resolved) is scored by how much it reads like the
  neighbours' replies, weighted by their similarity, times the square root of the
  smoothed resolution rate it led to; with its support.

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
# Chosen on a dialogue-level development split of the STC3 training dialogues (en and zh).
NEIGHBOURS = 30  # historic moments whose replies vote for a suggested response
NEIGHBOUR_POWER = 2.0  # a neighbour's vote = its context similarity ** this
RESPONSE_RESOLUTION_POWER = 0.5  # response score = agreement with the neighbours x resolution rate ** this
ACT_RESOLUTION_POWER = 1.0  # act score = P(act | context) x resolution rate ** this
POOL_FROM_CONTEXT = False  # neighbours and candidates from the chosen context only (else from all moments: better on STC3)


def normalize_response(text: str) -> str:
    """Responses that differ only in case, spacing or numbers (ids, phone numbers) are one response."""
    return _SPACE.sub(" ", _DIGITS.sub("#", text.lower())).strip()


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
    examples_resolved: int = 0


class SuggestIndex:
    """Counts per context (every suffix of it up to ``cfg.context`` events): acts and responses.

    Every response is kept, resolved or not: the ones from unresolved calls are never
    suggested (with ``cfg.resolved_only``) but still show what agents answer to such a
    customer turn.
    """

    MAX_EXAMPLES = 5  # customer texts and call ids kept per response

    def __init__(self, cfg: SuggestConfig):
        self.cfg = cfg
        self.acts: dict[tuple[str, ...], dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        self.responses: dict[tuple[str, ...], dict[str, _Response]] = defaultdict(dict)
        self.total = [0, 0]  # moments, resolved
        self._pools: dict = {}

    def add(self, m: Moment) -> None:
        if self._pools:
            self._pools.clear()
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
            # Examples from resolved calls first (the example call shown is one of them), then the others.
            if m.resolved and r.examples_resolved < self.MAX_EXAMPLES:
                if len(r.call_ids) >= self.MAX_EXAMPLES:
                    r.customer_texts.pop()
                    r.call_ids.pop()
                r.customer_texts.insert(r.examples_resolved, m.customer_text)
                r.call_ids.insert(r.examples_resolved, m.call_id)
                r.examples_resolved += 1
            elif len(r.call_ids) < self.MAX_EXAMPLES:
                r.customer_texts.append(m.customer_text)
                r.call_ids.append(m.call_id)

    # The lookups a ranking needs; StoreIndex answers the same from SQLite.

    def act_counts(self, key: tuple[str, ...]) -> dict[str, tuple[int, int]]:
        return {a: (n, r) for a, (n, r) in self.acts.get(key, {}).items()}

    def response_rows(self, key: tuple[str, ...]) -> list[dict]:
        return [
            {"text": r.text, "act": r.act, "support": r.support, "resolved": r.resolved, "customer_texts": r.customer_texts, "call_ids": r.call_ids}
            for r in self.responses.get(key, {}).values()
        ]

    def rows_for_store(self) -> tuple[list[tuple], list[tuple]]:
        """(act rows, response rows) to persist.

        Each context keeps its best ``cfg.max_responses`` responses from resolved calls
        (most resolved first) and as many of the others, the most used first (neighbours only).
        """
        act_rows = [(json.dumps(list(key), ensure_ascii=False), act, n, r)
                    for key, per in self.acts.items() for act, (n, r) in per.items()]
        resp_rows = []
        for key, per in self.responses.items():
            good = sorted((r for r in per.values() if r.resolved > 0), key=lambda r: (-r.resolved, -r.support, r.text))
            other = sorted((r for r in per.values() if r.resolved == 0), key=lambda r: (-r.support, r.text))
            ctx = json.dumps(list(key), ensure_ascii=False)
            for r in good[: self.cfg.max_responses] + other[: self.cfg.max_responses]:
                resp_rows.append((ctx, r.text, r.act, r.support, r.resolved, json.dumps(r.customer_texts, ensure_ascii=False), json.dumps(r.call_ids)))
        return act_rows, resp_rows


def _smoothed(resolved, n, base: float, prior: float):
    """``resolved`` of ``n`` pulled toward the rate ``base`` with ``prior`` moments of weight; 0
    with nothing to go on. Numbers give a float, arrays an array (element by element)."""
    total = np.asarray(n + prior, dtype=float)
    rate = np.divide(resolved + prior * base, total, out=np.zeros_like(total), where=total > 0)
    return rate if rate.ndim else float(rate)


def _vectorizer(texts: Sequence[str]):
    """TF-IDF over character n-grams: within words for spaced scripts, plain for Chinese."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    sample = "".join(texts[:200])
    cjk = len(_CJK.findall(sample)) > 0.3 * max(1, len(sample.replace(" ", "")))
    if cjk:
        return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)


class _Pool:
    """A context's responses: their customer turns and their own words as TF-IDF vectors.

    IDF comes from the pool itself, so what every customer (or agent) writes there
    ("hello", "thank you") counts for little.
    """

    def __init__(self, rows: list[dict]):
        self.rows = rows
        self.support = np.array([row["support"] for row in rows], dtype=float)
        self.resolved = np.array([row["resolved"] for row in rows], dtype=float)
        # The one call a row's moments all come from (None: several), and whether it names any,
        # so that the rows to leave out for a call are found without a loop over the pool.
        self.sole_call = np.array([_sole(row["call_ids"]) for row in rows], dtype=object)
        self.has_calls = np.array([bool(row["call_ids"]) for row in rows], dtype=bool)
        texts, owner = [], []
        for i, row in enumerate(rows):
            for t in row["customer_texts"] or [""]:
                texts.append(t)
                owner.append(i)
        self.owner = np.asarray(owner, dtype=int)
        self.context_vec = self.response_vec = None
        self._prepared: dict[str, np.ndarray] = {}
        if any(t.strip() for t in texts):
            try:
                self.context_vec = _vectorizer(texts).fit(texts)
                # Terms by texts: a query then walks only its own terms' texts, not the whole pool.
                self.context_postings = self.context_vec.transform(texts).T.tocsr()
            except ValueError:  # nothing but stop characters
                self.context_vec = None
        replies = [row["text"] for row in rows]
        if any(t.strip() for t in replies):
            try:
                self.response_vec = _vectorizer(replies).fit(replies)
                self.response_matrix = self.response_vec.transform(replies)
            except ValueError:
                self.response_vec = None

    def similarities(self, text: str) -> np.ndarray:
        """Per row: the highest cosine similarity between ``text`` and one of its customer turns."""
        hit = self._prepared.get(text)
        return hit if hit is not None else self._similarities([text])[text]

    def prepare(self, texts: Sequence[str]) -> None:
        """Work out ``similarities`` for these texts in one pass; only the last batch is kept
        (a report asks for one call's customer turns at a time)."""
        self._prepared = self._similarities(texts)

    def _similarities(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        out = {t: np.zeros(len(self.rows)) for t in texts}
        if self.context_vec is None or not self.rows or not out:
            return out
        per_text = (self.context_vec.transform(list(out)) @ self.context_postings).toarray()
        for sims, row in zip(out.values(), per_text):
            np.maximum.at(sims, self.owner, row)
        return out

    def usable(self, exclude_call: str | None) -> np.ndarray:
        """Per row: False when all its moments come from ``exclude_call`` (or it has none)."""
        if exclude_call is None:
            return np.ones(len(self.rows), dtype=bool)
        return (self.sole_call != exclude_call) & self.has_calls

    def agreement(self, weights: np.ndarray) -> np.ndarray:
        """Per row: the weighted mean cosine similarity of its words to the rows with weight."""
        if self.response_vec is None or weights.sum() <= 0:
            return np.zeros(len(self.rows))
        centre = self.response_matrix.T @ (weights / weights.sum())
        return np.asarray(self.response_matrix @ centre).ravel()


def _sole(call_ids: Sequence[str]) -> str | None:
    return call_ids[0] if call_ids and all(c == call_ids[0] for c in call_ids) else None


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


def act_model(index, context: Sequence[str], cfg: SuggestConfig) -> dict[str, tuple[float, float]]:
    """act -> (P(act | context), smoothed resolution rate), interpolated from the empty context up.

    Witten-Bell: a context seen n times with T different next acts keeps n / (n + T) of
    the probability for its own counts and hands T / (n + T) to the shorter context.
    The resolution rate of an act is smoothed toward its rate in the shorter context.
    """
    context = tuple(context)[-cfg.context:] if cfg.context else ()
    counts = index.act_counts(())
    n_all = sum(n for n, _ in counts.values())
    if not n_all:
        return {}
    base = sum(r for _, r in counts.values()) / n_all
    prob = {a: n / n_all for a, (n, _) in counts.items()}
    rate = {a: _smoothed(r, n, base, cfg.prior) for a, (n, r) in counts.items()}
    for c in range(1, len(context) + 1):
        counts = index.act_counts(context[len(context) - c:])
        n_here = sum(n for n, _ in counts.values())
        if not n_here:
            continue  # nothing seen after this longer context either
        kinds = len(counts)
        prob = {a: (counts.get(a, (0, 0))[0] + kinds * p) / (n_here + kinds) for a, p in prob.items()}
        rate = {a: _smoothed(counts[a][1], counts[a][0], r, cfg.prior) if a in counts else r for a, r in rate.items()}
    return {a: (prob[a], rate[a]) for a in prob}


def suggest(index, context: Sequence[str], customer_text: str, k: int, cfg: SuggestConfig, exclude_call: str | None = None) -> dict:
    """Top-k next agent acts and responses for the moment after ``context`` (turn-event labels).

    Each act: {act, score, probability, resolution_probability, support, share}: score =
    probability x resolution probability; support = moments of the chosen context where
    agents chose it, share = support / moments. Each response: {text, act, score,
    resolution_probability, support, resolved, similarity (of its customer turn to the
    current one), agreement (with the neighbours' replies), example_call_id}.
    """
    key, counts = choose_context(index, context, cfg)
    moments_here = sum(n for n, _ in counts.values())
    base = sum(r for _, r in counts.values()) / moments_here if moments_here else 0.0
    pool = _candidates(index, key if POOL_FROM_CONTEXT else ())
    sims = pool.similarities(customer_text)
    usable = pool.usable(exclude_call)
    # A call's own replies neither vote nor are suggested back to it.
    sims = np.where(usable, sims, 0.0)
    weights = np.zeros(len(pool.rows))
    order = np.argsort(-sims, kind="stable")[:NEIGHBOURS]
    order = order[sims[order] > 0]
    weights[order] = sims[order] ** NEIGHBOUR_POWER
    if not weights.any():  # nothing alike: what agents answer here most often
        weights = pool.support * usable

    model = act_model(index, context, cfg)
    acts = [
        {"act": act, "score": round(p * r ** ACT_RESOLUTION_POWER, 4), "probability": round(p, 4),
         "resolution_probability": round(r, 4), "support": counts.get(act, (0, 0))[0],
         "share": round(counts.get(act, (0, 0))[0] / moments_here, 4) if moments_here else 0.0}
        for act, (p, r) in model.items()
    ]
    acts.sort(key=lambda a: (-a["score"], -a["probability"], a["act"]))

    agreement = pool.agreement(weights)
    rates = _smoothed(pool.resolved, pool.support, base, cfg.prior)
    eligible = usable & (pool.resolved > 0) if cfg.resolved_only else usable
    # Only rows that can reach the top k get their dicts: those within two rounding steps of
    # the k-th best score (a score is shown rounded to 4 places; np.round and round may part by one).
    rough = np.round(agreement * rates ** RESPONSE_RESOLUTION_POWER, 4)
    candidates = np.flatnonzero(eligible)
    if 0 < k < len(candidates):
        kth = np.partition(rough[candidates], len(candidates) - k)[len(candidates) - k]
        candidates = candidates[rough[candidates] >= kth - 2e-4]
    responses = []
    for i in candidates:
        row, rate = pool.rows[i], float(rates[i])
        responses.append({
            "text": row["text"], "act": row.get("act"), "score": round(float(agreement[i]) * rate ** RESPONSE_RESOLUTION_POWER, 4),
            "resolution_probability": round(rate, 4), "support": row["support"], "resolved": row["resolved"],
            "similarity": round(float(sims[i]), 4), "agreement": round(float(agreement[i]), 4),
            "example_call_id": next((c for c in row["call_ids"] if c != exclude_call), None)})
    responses.sort(key=lambda r: (-r["score"], -r["similarity"], r["text"]))
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
    if not POOL_FROM_CONTEXT:  # every turn asks the same pool: its similarities in one pass
        _candidates(index, ()).prepare([t for t, role in zip(texts, roles) if role == CUSTOMER])
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
