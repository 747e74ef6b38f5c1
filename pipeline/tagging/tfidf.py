"""``TfidfVectorizer.transform`` for tagging: the same numbers, at a fraction of the cost.

Tagging transforms a few hundred turns at a time with several fitted vectorizers (a
turn's own text, its neighbours' texts, word and character n-grams). scikit-learn's
transform analyses and looks up every text once per vectorizer and validates its input
each time; here the vectorizers of one model that analyse text alike share one merged
vocabulary, so each distinct text of a batch is analysed and looked up once,
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
        self.words: dict[str, np.ndarray] = {}
        self.ids: dict[str, int] = {}
        for v in vectorizers:
            for term in v.vocabulary_:
                self.ids.setdefault(term, len(self.ids))
        self.columns: dict[int, np.ndarray] = {}
        for v in vectorizers:
            column = np.full(len(self.ids), -1, dtype=np.int64)
            column[[self.ids[t] for t in v.vocabulary_]] = list(v.vocabulary_.values())
            self.columns[id(v)] = column

    def pieces(self, text: str) -> list[str]:
        """What a text's terms add up from: its words for char_wb n-grams, else the whole text."""
        return self.preprocess(self.decode(text)).split() if self.by_word else [text]

    def piece_ids(self, piece: str) -> np.ndarray:
        """Union term ids of one piece, a term once per occurrence."""
        lookup = self.ids.get
        if not self.by_word:
            return np.array([j for j in map(lookup, self.analyzer(piece)) if j is not None], dtype=np.int64)
        words = self.words
        ids = words.get(piece)
        if ids is None:
            if len(words) > MAX_WORDS:  # a bound on memory over a long night; refilled as words recur
                words.clear()
            ids = words[piece] = np.array([j for j in map(lookup, self.word_ngrams(piece)) if j is not None], dtype=np.int64)
        return ids


class _Batch:
    """The pieces of one batch's texts for one ``_SharedTerms``, each looked up once.

    A text is a row of piece counts; a piece is a row of term counts; their product is
    the text's term counts. scipy multiplies sparse matrices without sorting, which
    costs far less than counting each text's terms on its own.
    """

    def __init__(self, shared: _SharedTerms):
        self.shared = shared
        self.index: dict[str, int] = {}
        self.ids: list[np.ndarray] = []
        self.texts: dict[str, tuple[list[int], list[int]]] = {}

    def text(self, text: str) -> tuple[list[int], list[int]]:
        """(piece numbers, how often each occurs) of one text."""
        hit = self.texts.get(text)
        if hit is None:
            counts: dict[int, int] = {}
            for piece in self.shared.pieces(text):
                k = self.index.get(piece)
                if k is None:
                    k = self.index[piece] = len(self.ids)
                    self.ids.append(self.shared.piece_ids(piece))
                counts[k] = counts.get(k, 0) + 1
            hit = self.texts[text] = (list(counts), list(counts.values()))
        return hit

    def term_counts(self, texts, column: np.ndarray, n_columns: int) -> sparse.csr_matrix:
        """Counts of a vectorizer's terms (``column`` maps union ids to its columns) in ``texts``."""
        rows = [self.text(t if isinstance(t, str) else "") for t in texts]
        lengths = [len(r[0]) for r in rows]
        pieces = sparse.csr_matrix(
            (np.fromiter((c for r in rows for c in r[1]), dtype=np.float64, count=sum(lengths)),
             np.fromiter((k for r in rows for k in r[0]), dtype=np.int64, count=sum(lengths)),
             np.concatenate([[0], np.cumsum(lengths)])),
            shape=(len(rows), len(self.ids)),
        )
        ids = np.concatenate(self.ids) if self.ids else np.zeros(0, dtype=np.int64)
        cols = column[ids]
        keep = cols >= 0
        # Rows with a term more than once ("banana": "an", "na") are summed by the product.
        kept = np.concatenate([[0], np.cumsum(keep)])
        ends = np.cumsum([len(i) for i in self.ids], dtype=np.int64)
        indptr = kept[np.concatenate([[0], ends])]
        terms = sparse.csr_matrix((np.ones(int(kept[-1])), cols[keep], indptr), shape=(len(self.ids), n_columns))
        return pieces @ terms


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
        batch = cache.get(id(shared))
        if batch is None:
            batch = cache[id(shared)] = _Batch(shared)
        n, n_columns = len(texts), len(vectorizer.vocabulary_)
        if n == 0:
            return sparse.csr_matrix((0, n_columns), dtype=vectorizer.dtype)
        counts = batch.term_counts(texts, shared.columns[id(vectorizer)], n_columns)
        data, cols = counts.data, counts.indices
        rows = np.repeat(np.arange(n), np.diff(counts.indptr))
        # TfidfTransformer.transform, written out: its input validation costs more than the sums.
        tfidf = vectorizer._tfidf
        if tfidf.sublinear_tf:
            data = np.log(data) + 1.0
        if tfidf.use_idf:
            data = data * tfidf.idf_[cols]
        if tfidf.norm == "l2":
            norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=n))
            data /= np.where(norms > 0, norms, 1.0)[rows]
        elif tfidf.norm is not None:
            raise ValueError(f"unsupported TF-IDF norm {tfidf.norm!r}")
        counts.data = data.astype(vectorizer.dtype)
        return counts


# Built on first use per fitted model (keyed by the object holding its vectorizers), never saved.
_FAST: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fast_tfidf(owner, vectorizers: Sequence[TfidfVectorizer]) -> FastTfidf:
    """The ``FastTfidf`` of ``owner`` (a fitted ColumnTransformer or FeatureUnion) and its vectorizers."""
    fast = _FAST.get(owner)
    if fast is None:
        fast = _FAST[owner] = FastTfidf(vectorizers)
    return fast
