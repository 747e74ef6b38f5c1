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


# Distinct words whose n-gram ids are kept between batches (some 300 bytes each: tens of MB at most).
MAX_WORDS = 200_000


def _analysis_key(vectorizer: TfidfVectorizer) -> tuple:
    return (vectorizer.analyzer, vectorizer.ngram_range, vectorizer.lowercase, vectorizer.token_pattern,
            vectorizer.strip_accents, vectorizer.preprocessor, vectorizer.tokenizer)


class _SharedTerms:
    """Fitted vectorizers that analyse alike: the union of their vocabularies, and per
    vectorizer a 0/1 matrix from union terms to its columns."""

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
        self.select: dict[int, sparse.csr_matrix] = {}
        for v in vectorizers:
            rows = np.array([self.ids[t] for t in v.vocabulary_], dtype=np.int64)
            cols = np.fromiter(v.vocabulary_.values(), dtype=np.int64, count=len(rows))
            self.select[id(v)] = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(self.ids), len(v.vocabulary_)))

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
    """The texts of one batch for one ``_SharedTerms``, each piece of them looked up once.

    A text is a row of its pieces (a piece once per occurrence), a piece a row of its
    union terms, and a vectorizer's selection matrix maps those to its columns: the
    product of the three is the texts' term counts. scipy multiplies sparse matrices
    without sorting and sums repeated entries as it goes, which costs far less than
    counting each text's terms on its own; the texts-by-terms product is made once per
    batch and shared by the vectorizers and columns (a turn's text is also its
    neighbours' context).
    """

    def __init__(self, shared: _SharedTerms):
        self.shared = shared
        self.index: dict[str, int] = {}  # piece -> its row in `ids`
        self.ids: list[np.ndarray] = []
        self.row: dict[str, int] = {}  # text -> its row in `pieces_of`
        self.pieces_of: list[list[int]] = []
        self.counts: sparse.csr_matrix | None = None  # texts x union terms, for the texts so far

    def _add(self, text: str) -> int:
        index, ids = self.index, self.ids
        pieces = self.shared.pieces(text)
        found = [index.get(p) for p in pieces]
        if None in found:
            for i, k in enumerate(found):
                if k is None:
                    k = found[i] = index.get(pieces[i])  # the same new piece twice in one text
                    if k is None:
                        k = found[i] = index[pieces[i]] = len(ids)
                        ids.append(self.shared.piece_ids(pieces[i]))
        self.row[text] = len(self.pieces_of)
        self.pieces_of.append(found)
        return self.row[text]

    def _union_counts(self) -> sparse.csr_matrix:
        """Texts by union terms, for every text added so far (rows added since the last call computed now)."""
        done = 0 if self.counts is None else self.counts.shape[0]
        if done < len(self.pieces_of):
            new = self.pieces_of[done:]
            lengths = [len(p) for p in new]
            n = sum(lengths)
            texts = sparse.csr_matrix(
                (np.ones(n), np.fromiter((k for p in new for k in p), dtype=np.int64, count=n),
                 np.concatenate([[0], np.cumsum(lengths)])),
                shape=(len(new), len(self.ids)),
            )
            sizes = [len(i) for i in self.ids]
            terms = sparse.csr_matrix(
                (np.ones(sum(sizes)), np.concatenate(self.ids) if self.ids else np.zeros(0, dtype=np.int64),
                 np.concatenate([[0], np.cumsum(sizes)])),
                shape=(len(self.ids), len(self.shared.ids)),
            )
            counts = texts @ terms
            self.counts = counts if self.counts is None else sparse.vstack([self.counts, counts], format="csr")
        return self.counts

    def term_counts(self, texts, select: sparse.csr_matrix) -> sparse.csr_matrix:
        """Counts of a vectorizer's terms (``select``: its selection matrix) in ``texts``."""
        rows = []
        for text in texts:
            text = text if isinstance(text, str) else ""
            r = self.row.get(text)
            rows.append(self._add(text) if r is None else r)
        return self._union_counts()[rows] @ select


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
        counts = batch.term_counts(texts, shared.select[id(vectorizer)])
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
