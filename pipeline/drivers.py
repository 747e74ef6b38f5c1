"""Call drivers: why customers call, as topics of their problem statements across calls.

Per language, the customer turns tagged problem_stated (or, in a call without one,
the customer's first turn) are turned into TF-IDF vectors and clustered with spherical
k-means (k-means on unit-length vectors: cosine similarity). A topic is named by the
terms nearest its centre and reported with its volume (calls), share and the
resolution rate of its calls.

English uses words and word pairs without stop words; Chinese, written without spaces,
uses character pairs (two-character words are the most common in Chinese, and a pair
reads as a keyword), so no segmenter is needed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from .config import DriversConfig
from .records import CUSTOMER

MAX_TOPICS = 30
STATEMENTS_PER_TOPIC = 30
# Function characters that make poor Chinese keywords on their own or in a pair.
_ZH_STOP = set("的了是我你他她它们在有和就不也都这那吗呢吧啊么个与及或而被把给从到对为以之于其中上下么呀哦嗯请您")


_MENTION = re.compile(r"@\S+")


def _zh_analyzer(text: str) -> list[str]:
    chars = [c for c in _MENTION.sub(" ", text) if "\u3400" <= c <= "\u9fff"]
    return [a + b for a, b in zip(chars, chars[1:]) if not (a in _ZH_STOP and b in _ZH_STOP) and a not in _ZH_STOP and b not in _ZH_STOP]


def _vectorizer(language: str, n_docs: int, stop_words: Sequence[str] = ()):
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

    min_df = 2 if n_docs >= 50 else 1
    extra = {w.lower() for w in stop_words}
    if language.startswith("zh"):
        def analyzer(text: str) -> list[str]:
            return [t for t in _zh_analyzer(text) if t not in extra]

        return TfidfVectorizer(analyzer=analyzer if extra else _zh_analyzer, min_df=min_df, max_df=0.5, sublinear_tf=True,
                               max_features=20000)
    # @mentions name the company or account written to, not the problem.
    return TfidfVectorizer(stop_words=sorted(ENGLISH_STOP_WORDS | extra), ngram_range=(1, 2), min_df=min_df, max_df=0.5,
                           sublinear_tf=True, max_features=20000, token_pattern=r"(?u)\b[^\W\d_][^\W\d_]+\b",
                           preprocessor=lambda t: _MENTION.sub(" ", t.lower()))


def topic_count(n_statements: int, configured: int) -> int:
    if configured:
        return max(1, min(configured, n_statements))
    return int(min(MAX_TOPICS, max(2, round(n_statements / STATEMENTS_PER_TOPIC))))


def cluster_statements(texts: Sequence[str], language: str, cfg: DriversConfig, seed: int = 0) -> tuple[np.ndarray, list[list[str]]]:
    """(topic of each text, top keywords of each topic)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    vec = _vectorizer(language, len(texts), cfg.stop_words)
    X = vec.fit_transform(texts)  # rows are L2-normalised: k-means on them clusters by cosine
    X.sort_indices()
    # No more topics than distinct statements: k-means cannot fill the rest (and warns).
    distinct = len({(X.indices[a:b].tobytes(), X.data[a:b].tobytes()) for a, b in zip(X.indptr[:-1], X.indptr[1:])})
    k = min(topic_count(len(texts), cfg.topics), distinct)
    if X.shape[1] == 0 or k < 1:
        return np.zeros(len(texts), dtype=int), [[]]
    if len(texts) > 20000:
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096)
    else:
        model = KMeans(n_clusters=k, random_state=seed, n_init=2)
    labels = model.fit_predict(X)
    terms = np.asarray(vec.get_feature_names_out())
    keywords = [list(terms[np.argsort(-centre)[: cfg.keywords]]) for centre in model.cluster_centers_]
    return labels, keywords


def problem_statements(rows: Iterable[tuple[str, str, list[tuple[str, str, str]]]]) -> dict[str, list[tuple[str, str]]]:
    """language -> [(call_id, statement)] from (call_id, language, [(role, act, text)]) per call."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for call_id, language, turns in rows:
        stated = [text for role, act, text in turns if act == "problem_stated" and text.strip()]
        if not stated:
            stated = [text for role, _act, text in turns if role == CUSTOMER and text.strip()][:1]
        if stated:
            out[(language or "en").split("-")[0]].append((call_id, " ".join(stated)))
    return out


def call_drivers(rows, resolved: dict[str, bool], cfg: DriversConfig) -> list[dict]:
    """Topics per language, largest first: {language, label, keywords, volume, share, resolution_rate, examples, call_ids}."""
    drivers = []
    for language, items in sorted(problem_statements(rows).items()):
        if len(items) < cfg.min_statements:
            continue
        call_ids = [c for c, _ in items]
        texts = [t for _, t in items]
        labels, keywords = cluster_statements(texts, language, cfg)
        for topic, words in enumerate(keywords):
            members = [i for i in np.flatnonzero(labels == topic)]
            if not members:
                continue
            ids = [call_ids[i] for i in members]
            drivers.append({
                "language": language,
                "label": " / ".join(words[:3]) if words else f"topic {topic + 1}",
                "keywords": words,
                "volume": len(ids),
                "share": round(len(ids) / len(items), 4),
                "resolution_rate": round(sum(resolved.get(c, False) for c in ids) / len(ids), 4),
                "examples": [texts[i][:200] for i in members[:3]],
                "call_ids": ids[:50],
            })
    drivers.sort(key=lambda d: (-d["volume"], d["language"], d["label"]))
    return drivers


def drivers_from_store(store, cfg: DriversConfig) -> list[dict]:
    language = {r["call_id"]: r["language"] for r in store.outcome_rows()}
    resolved, rows = {}, []
    for call_id, _labels, roles, acts, texts, is_resolved in store.turn_sequences():
        resolved[call_id] = is_resolved
        rows.append((call_id, language.get(call_id, "en"), list(zip(roles, acts, texts))))
    return call_drivers(rows, resolved, cfg)
