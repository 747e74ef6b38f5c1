"""``TfidfVectorizer.transform`` for tagging: the same numbers, at a fraction of the cost.

Tagging transforms a few hundred turns at a time with several fitted vectorizers (a
turn's own text, its neighbours' texts, word and character n-grams). scikit-learn's
transform analyses and looks up every text once per vectorizer and validates its input
each time; here the vectorizers of one model that analyse text alike share one merged
vocabulary, so each distinct text of a batch is analysed, looked up and counted once,
whichever column and vectorizer it appears in. Tests check the numbers against
scikit-learn's.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer


# Distinct words whose n-gram ids are kept between batches (a few MB at most).
MAX_WORDS = 200_000


def _analysis_key(vectorizer: TfidfVectorizer) -> tuple:
    return (vectorizer.analyzer, vectorizer.ngram_range, vectorizer.lowercase, vectorizer.token_pattern,
            vectorizer.strip_accents, vectorizer.preprocessor, vectorizer.tokenizer)


class _SharedTerms:
    """Fitted vectorizers that analyse alike: the union of their vocabularies, and per
    vectorizer where each union term is among its columns (-1: not a term of it)."""

    def __init__(self, vectorizers: Sequence[TfidfVectorizer]):
        first = vectorizers[0]
        self.analyzer = first.build_analyzer()
        # char_wb n-grams never cross a word boundary, so a text's terms are its words' terms
        # in order: looked up once per distinct word, not once per n-gram of every text.
        self.by_word = first.analyzer == "char_wb" and first.preprocessor is None
        self.preprocess = first.build_preprocessor()
        self.decode = first.decode
        self.word_ngrams = first._char_wb_ngrams
        self.words: dict[str, list[int]] = {}
        self.ids: dict[str, int] = {}
        for v in vectorizers:
            for term in v.vocabulary_:
                self.ids.setdefault(term, len(self.ids))
        self.columns: dict[int, np.ndarray] = {}
        for v in vectorizers:
            column = np.full(len(self.ids), -1, dtype=np.int64)
            column[[self.ids[t] for t in v.vocabulary_]] = list(v.vocabulary_.values())
            self.columns[id(v)] = column

    def _term_ids(self, text: str) -> list[int]:
        lookup = self.ids.get
        if not self.by_word:
            return [j for j in map(lookup, self.analyzer(text)) if j is not None]
        words = self.words
        if len(words) > MAX_WORDS:  # a bound on memory over a long batch; refilled as words recur
            words.clear()
        out: list[int] = []
        for word in self.preprocess(self.decode(text)).split():
            ids = words.get(word)
            if ids is None:
                ids = words[word] = [j for j in map(lookup, self.word_ngrams(word)) if j is not None]
            out += ids
        return out

    def counts(self, text: str, cache: dict) -> tuple[np.ndarray, np.ndarray]:
        """(union term ids, counts) of one text, from ``cache`` when the batch saw it already."""
        key = (id(self), text)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = np.unique(np.array(self._term_ids(text), dtype=np.int64), return_counts=True)
        return hit


class FastTfidf:
    """The fitted TF-IDF vectorizers of one model, transformed together (see the module doc)."""

    def __init__(self, vectorizers: Sequence[TfidfVectorizer]):
        groups: dict[tuple, list[TfidfVectorizer]] = {}
        for v in vectorizers:
            groups.setdefault(_analysis_key(v), []).append(v)
        self._terms = {id(v): shared for members in groups.values() for shared in [_SharedTerms(members)] for v in members}

    def transform(self, vectorizer: TfidfVectorizer, texts, cache: dict) -> sparse.csr_matrix:
        """``vectorizer.transform(texts)``; ``cache`` is one dict per batch, shared by the calls for it."""
        shared = self._terms[id(vectorizer)]
        per_text = [shared.counts(t if isinstance(t, str) else "", cache) for t in texts]
        n = len(per_text)
        if n == 0:
            return sparse.csr_matrix((0, len(vectorizer.vocabulary_)), dtype=vectorizer.dtype)
        ids = np.concatenate([p[0] for p in per_text])
        counts = np.concatenate([p[1] for p in per_text])
        rows = np.repeat(np.arange(n), [len(p[0]) for p in per_text])
        cols = shared.columns[id(vectorizer)][ids]
        keep = cols >= 0
        rows, cols, data = rows[keep], cols[keep], counts[keep].astype(np.float64)
        # TfidfTransformer.transform, written out: its input validation costs more than the sums.
        tfidf = vectorizer._tfidf
        if tfidf.sublinear_tf:
            data = np.log(data) + 1.0
        if tfidf.use_idf:
            data *= tfidf.idf_[cols]
        if tfidf.norm == "l2":
            norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=n))
            data /= np.where(norms > 0, norms, 1.0)[rows]
        elif tfidf.norm is not None:
            raise ValueError(f"unsupported TF-IDF norm {tfidf.norm!r}")
        # Rows are already grouped in order; within a row the columns follow the union ids,
        # which sparse products do not mind.
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
        return sparse.csr_matrix((data.astype(vectorizer.dtype), cols, indptr), shape=(n, len(vectorizer.vocabulary_)))


# Built on first use per fitted model (keyed by the object holding its vectorizers), never saved.
_FAST: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fast_tfidf(owner, vectorizers: Sequence[TfidfVectorizer]) -> FastTfidf:
    """The ``FastTfidf`` of ``owner`` (a fitted ColumnTransformer or FeatureUnion) and its vectorizers."""
    fast = _FAST.get(owner)
    if fast is None:
        fast = _FAST[owner] = FastTfidf(vectorizers)
    return fast
