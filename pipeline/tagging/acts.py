"""Per-turn issue-state acts: the scikit-learn estimator and the `callpipe_acts` spaCy component.

The estimator reads one row per turn (see ``COLUMNS``) and predicts one of
``records.ACTS``. It is two stacked stages:

1. a class-balanced linear SVM over the turn's text (word + char TF-IDF; char
   n-grams only for Chinese), its role, its position and its neighbours' text;
2. a logistic regression over the stage-1 scores of the turn *and of the two turns
   before and after it*, plus role and position. Acts are sequential (a confirmation
   follows an offered solution, which is why that turn was the solution), so what
   the neighbours look like matters.

Given ``votes`` (the share of annotators that chose each act), stage 1 learns from
every act a turn received votes for, each weighted by its share, not from the
majority label alone: a turn half the annotators called an offered solution says
more about the rare acts than its label "other" does.

Stage 2 is trained on out-of-fold stage-1 scores (folds grouped by dialogue) so
that it learns how far to trust stage 1 on unseen text. It has no class weights by
default, so its probabilities serve as ``act_confidence``. A turn whose speaker is
known gets only that speaker's acts (``ROLE_ACTS``), and the decision rule multiplies
the probabilities by per-class factors chosen for macro-F1 on out-of-fold predictions
of the training data (without them the rare acts would seldom win).

Models are stored with ``skops.io`` and loaded with an explicit list of trusted
types, never with pickle.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder
from sklearn.svm import LinearSVC
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_is_fitted
from spacy.language import Language
from spacy.tokens import Doc
from threadpoolctl import threadpool_limits

from .. import modelfiles
from .turnstate import state
from .tfidf import fast_tfidf
from ..records import ACTS, ROLES, UNKNOWN

# One row per turn. `dialogue` only groups rows: neighbours are found by
# (dialogue, index), and cross-validation never splits a dialogue.
COLUMNS = ("text", "role", "position", "index", "prev_text", "next_text", "dialogue")
TEXT, ROLE, POSITION, INDEX, PREV, NEXT, DIALOGUE = range(len(COLUMNS))


# --- rows -------------------------------------------------------------------------------------

def relative_position(index: int, n_turns: int) -> float:
    """0 for the first turn, 1 for the last; a one-turn call is at 0."""
    return index / (n_turns - 1) if n_turns > 1 else 0.0


def dialogue_rows(turns: Sequence[tuple[str, str]], dialogue: object = 0) -> list[list]:
    """Rows for one conversation given as (role, text) pairs in order."""
    n = len(turns)
    return [
        [
            text,
            role,
            relative_position(i, n),
            i,
            turns[i - 1][1] if i > 0 else "",
            turns[i + 1][1] if i + 1 < n else "",
            dialogue,
        ]
        for i, (role, text) in enumerate(turns)
    ]


def as_table(rows: Iterable[Sequence]) -> np.ndarray:
    """A 2-D object array in ``COLUMNS`` order (what the estimator takes as X)."""
    rows = list(rows)
    table = np.empty((len(rows), len(COLUMNS)), dtype=object)
    for r, row in enumerate(rows):
        if len(row) != len(COLUMNS):
            raise ValueError(f"row {r}: expected {len(COLUMNS)} fields {COLUMNS}, got {len(row)}")
        table[r, :] = row
    return table


# --- feature helpers (module level so that skops can name and trust them) ---------------------

def position_features(X) -> np.ndarray:
    """[position, is_first, is_last, log(1 + index)] from the (position, index) columns."""
    X = np.asarray(X, dtype=float)
    position, index = X[:, 0], X[:, 1]
    is_first = index == 0
    is_last = (position >= 1.0) & (index > 0)
    return np.column_stack([position, is_first, is_last, np.log1p(index)]).astype(float)


class Tfidf(TfidfVectorizer):
    """A TfidfVectorizer that saves its vocabulary as one array of terms.

    skops stores a dict entry by entry: a 40k-term vocabulary made the file several MB
    and took 15 s to load. The terms in index order (one array) restore the same dict.
    ``stop_words_`` (every term the vocabulary cap cut; introspection only) is not saved.
    """

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: the fitted object itself must not change
        state.pop("stop_words_", None)
        vocabulary = state.pop("vocabulary_", None)
        if vocabulary is not None:
            terms = [None] * len(vocabulary)
            for term, i in vocabulary.items():
                terms[i] = term
            state["vocabulary_terms_"] = np.array(terms, dtype=str)
        return state

    def __setstate__(self, state):
        state = dict(state)
        terms = state.pop("vocabulary_terms_", None)
        super().__setstate__(state)
        if terms is not None:
            self.vocabulary_ = {str(term): i for i, term in enumerate(terms)}


def _text_vectorizers(lang: str, max_features: int) -> list[tuple[str, Tfidf]]:
    """Word + char TF-IDF for space-separated languages; char n-grams alone for Chinese."""
    char = Tfidf(
        analyzer="char" if lang == "zh" else "char_wb",
        ngram_range=(1, 3) if lang == "zh" else (2, 5),
        sublinear_tf=True,
        min_df=2,
        max_features=max_features,
        dtype=np.float32,
    )
    if lang == "zh":
        return [("char", char)]
    word = Tfidf(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=max_features, dtype=np.float32)
    return [("word", word), ("char", char)]


# --- the estimator ----------------------------------------------------------------------------

class ActClassifier(ClassifierMixin, BaseEstimator):
    """Per-turn act classifier over rows in ``COLUMNS`` order.

    Parameters
    ----------
    lang : "en" or "zh"
        Chooses the text features (Chinese has no spaces: char n-grams only).
    max_features : int
        Vocabulary cap per text vectorizer; keeps the saved model small.
    context_max_features : int
        Vocabulary cap for each neighbour-text vectorizer.
    context_words : bool
        Give the neighbours' text word n-grams as well as char n-grams (English).
    stage1 : "svm" or "logreg"
        The stage-1 classifier: a class-balanced linear SVM or logistic regression.
    C : float
        Inverse regularisation of the stage-1 classifier.
    sequence : bool
        Give stage 2 the neighbours' stage-1 scores (off: the turn's own only).
    stage2_C : float
        Inverse regularisation of the stage-2 logistic regression.
    stage2_class_weight : "balanced" or None
        Class weights of the stage-2 logistic regression (None keeps its probabilities
        calibrated enough to serve as confidences).
    soft_labels : bool
        With ``votes`` given to ``fit``, train stage 1 on the annotators' vote shares
        (one weighted copy of a turn per act it got votes for); stage 2 and the
        decision factors still learn from the majority labels.
    tune_decision : bool
        Choose per-class decision factors for macro-F1 on out-of-fold predictions.
    cv : int
        Folds (grouped by dialogue) for the out-of-fold predictions.
    random_state : int
        Seed for the fold assignment and the linear SVM.
    """

    def __init__(
        self,
        lang: str = "en",
        max_features: int = 20000,
        context_max_features: int = 5000,
        context_words: bool = False,
        stage1: str = "svm",
        C: float = 0.3,
        sequence: bool = True,
        stage2_C: float = 1.0,
        stage2_class_weight: str | None = None,
        soft_labels: bool = True,
        tune_decision: bool = True,
        cv: int = 5,
        random_state: int = 0,
    ):
        self.lang = lang
        self.max_features = max_features
        self.context_max_features = context_max_features
        self.context_words = context_words
        self.stage1 = stage1
        self.C = C
        self.sequence = sequence
        self.stage2_C = stage2_C
        self.stage2_class_weight = stage2_class_weight
        self.soft_labels = soft_labels
        self.tune_decision = tune_decision
        self.cv = cv
        self.random_state = random_state

    # -- construction --

    def _stage1(self) -> Pipeline:
        own = _text_vectorizers(self.lang, self.max_features)
        # Neighbours get the char vectorizer (and the word one with context_words), with a smaller vocabulary.
        keep = slice(None) if self.context_words else slice(-1, None)
        prev = _text_vectorizers(self.lang, self.context_max_features)[keep]
        nxt = _text_vectorizers(self.lang, self.context_max_features)[keep]
        features = ColumnTransformer(
            [(name, vec, TEXT) for name, vec in own]
            + [(f"prev_{name}", vec, PREV) for name, vec in prev]
            + [(f"next_{name}", vec, NEXT) for name, vec in nxt]
            + [
                # An `unknown` role encodes as all zeros: the text and position still decide.
                ("role", OneHotEncoder(categories=[list(ROLES)], handle_unknown="ignore"), [ROLE]),
                ("position", FunctionTransformer(position_features), [POSITION, INDEX]),
            ],
            sparse_threshold=1.0,
        )
        # Balanced weights so that the rare acts get scores worth passing on to stage 2.
        if self.stage1 == "logreg":
            clf = LogisticRegression(C=self.C, class_weight="balanced", max_iter=3000)
        else:
            clf = LinearSVC(C=self.C, class_weight="balanced", random_state=self.random_state)
        return Pipeline([("features", features), ("clf", clf)])

    def _stage2(self) -> LogisticRegression:
        # Unweighted by default, so that its probabilities can be read as confidences; class
        # weights would overstate the rare acts. (Gradient boosting here did worse in
        # cross-validation: too few rare-act turns to learn interactions from.)
        return LogisticRegression(C=self.stage2_C, max_iter=3000, class_weight=getattr(self, "stage2_class_weight", None))

    def _validate(self, X, y=None):
        X = np.asarray(X, dtype=object)
        if X.ndim != 2 or X.shape[1] != len(COLUMNS):
            raise ValueError(f"X must have {len(COLUMNS)} columns {COLUMNS}, got shape {X.shape}")
        if self.lang not in ("en", "zh"):
            raise ValueError(f"lang must be 'en' or 'zh', got {self.lang!r}")
        if getattr(self, "stage1", "svm") not in ("svm", "logreg"):  # models saved before the option are SVMs
            raise ValueError(f"stage1 must be 'svm' or 'logreg', got {self.stage1!r}")
        if y is not None:
            y = np.asarray(y, dtype=object)
            if y.shape != (X.shape[0],):
                raise ValueError(f"y must have one label per row of X: {y.shape} vs {X.shape[0]} rows")
            unknown = sorted(set(y) - set(ACTS))
            if unknown:
                raise ValueError(f"unknown act label(s) {unknown}; allowed: {list(ACTS)}")
            if len(set(y)) < 2:
                raise ValueError("need at least two different acts to learn from")
        return X, y

    # -- stage 2 features --

    def _stage2_features(self, X: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Own stage-1 scores, role, position and (with ``sequence``) the scores of the
        turns up to two before and after, each with a 'this neighbour exists' flag."""
        blocks = [scores]
        if self.sequence:
            # A turn's neighbours by (dialogue, index): one sorted int key per row, found by search.
            codes: dict = {}
            dialogue = np.fromiter((codes.setdefault(d, len(codes)) for d in X[:, DIALOGUE]), dtype=np.int64, count=len(X))
            index = X[:, INDEX].astype(np.int64)
            low = int(index.min(initial=0))
            span = int(index.max(initial=0)) - low + 5  # so that index +-2 never reaches another dialogue
            keys = dialogue * span + index - low
            order = np.argsort(keys, kind="stable")
            ranked = keys[order]
            k = scores.shape[1]
            for offset in (-2, -1, 1, 2):
                block = np.zeros((len(X), k + 1))
                # The last row with the key, as a dict from key to row would keep.
                at = np.searchsorted(ranked, keys + offset, side="right") - 1
                found = at >= 0
                found[found] = ranked[at[found]] == keys[found] + offset
                block[found, :k] = scores[order[at[found]]]
                block[found, k] = 1.0
                blocks.append(block)
        roles = np.column_stack([X[:, ROLE] == role for role in ROLES]).astype(float)
        blocks += [roles, position_features(X[:, [POSITION, INDEX]])]
        return np.hstack(blocks)

    def _scores(self, stage1, X: np.ndarray) -> np.ndarray:
        scores = stage1.decision_function(X)
        return scores[:, None] if scores.ndim == 1 else scores  # two classes give one column

    def _fast_scores(self, X: np.ndarray) -> np.ndarray:
        """``stage1_.decision_function(X)`` without the per-call overhead of ColumnTransformer.

        Tagging calls this once per call of a few turns, where scikit-learn's validation
        and dispatch cost far more than the arithmetic. Each distinct text is analysed,
        looked up and counted once (a turn's text is also its neighbours' context; see
        tfidf.py). Same numbers as the pipeline (a test checks it).
        """
        features = self.stage1_.named_steps["features"]
        svm = self.stage1_.named_steps["clf"]
        tfidf = fast_tfidf(features, [t for _, t, _ in features.transformers_ if isinstance(t, TfidfVectorizer)])
        cache: dict = {}
        blocks = []
        for _, transformer, columns in features.transformers_:
            if transformer == "drop":
                continue
            if isinstance(transformer, TfidfVectorizer):
                blocks.append(tfidf.transform(transformer, X[:, columns], cache))
            elif isinstance(transformer, OneHotEncoder):
                categories = transformer.categories_[0]
                values = X[:, columns[0]]
                blocks.append(sparse.csr_matrix(np.column_stack([values == c for c in categories]).astype(np.float64)))
            else:
                blocks.append(sparse.csr_matrix(transformer.transform(X[:, columns])))
        F = sparse.hstack(blocks, format="csr")
        scores = np.asarray(F @ svm.coef_.T) + svm.intercept_
        return scores if svm.coef_.shape[0] > 1 else scores[:, :1]

    # -- fit / predict --

    def fit(self, X, y, votes=None):
        """``votes``: optional (n_rows, len(ACTS)) shares of annotators per act, columns
        in ``records.ACTS`` order; used by stage 1 when ``soft_labels`` is on."""
        # One thread: these fits are small, and on a shared machine oversubscribed
        # BLAS/OpenMP threads made them many times slower.
        with threadpool_limits(limits=1):
            return self._fit(X, y, votes)

    def _fit(self, X, y, votes=None):
        X, y = self._validate(X, y)
        if votes is not None:
            votes = np.asarray(votes, dtype=float)
            if votes.shape != (X.shape[0], len(ACTS)):
                raise ValueError(f"votes must have shape ({X.shape[0]}, {len(ACTS)}) (one column per act in ACTS), got {votes.shape}")
        soft = votes is not None and getattr(self, "soft_labels", False)
        self.classes_ = unique_labels(y)
        groups = X[:, DIALOGUE]
        n_groups = len(set(groups))
        if n_groups < 2:
            raise ValueError("need rows from at least 2 dialogues (stage 2 learns from out-of-fold scores)")
        folds = list(
            GroupKFold(n_splits=min(self.cv, n_groups), shuffle=True, random_state=self.random_state).split(X, y, groups)
        )
        self.stage1_ = self._stage1()
        features = self.stage1_.named_steps["features"]
        F = features.fit_transform(X, y)
        # Stage 2 must learn from stage-1 scores on turns stage 1 was not fitted on, as at
        # prediction time. The vectorizers (unsupervised) are fitted once on all rows to save
        # time; only the classifier is refitted per fold, so no label leaks into the scores.
        svm = self.stage1_.named_steps["clf"]
        if soft:
            oof_scores = np.zeros((len(y), len(self.classes_)))
            for train, held_out in folds:
                oof_scores[held_out] = self._scores(_fit_soft(clone(svm), F[train], votes[train], self.classes_), F[held_out])
            _fit_soft(svm, F, votes, self.classes_)
        else:
            oof_scores = cross_val_predict(clone(svm), F, y, cv=folds, method="decision_function")
            oof_scores = oof_scores[:, None] if oof_scores.ndim == 1 else oof_scores
            svm.fit(F, y)
        Z = self._stage2_features(X, oof_scores)
        self.stage2_ = self._stage2().fit(Z, y)
        if self.tune_decision:
            oof = cross_val_predict(self._stage2(), Z, y, cv=folds, method="predict_proba")
            oof = mask_by_role(oof, list(X[:, ROLE]), self.classes_)  # as predict decides
            self.class_factors_ = tune_class_factors(oof, y, self.classes_)
        else:
            self.class_factors_ = np.ones(len(self.classes_))
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "stage2_")
        X, _ = self._validate(X)
        if len(X) == 0:
            return np.zeros((0, len(self.classes_)))
        # No thread limit needed here (as in fit): a few rows at a time, and finding the
        # thread pools to limit costs more than the prediction.
        return self.stage2_.predict_proba(self._stage2_features(X, self._fast_scores(X)))

    def predict(self, X) -> np.ndarray:
        X, _ = self._validate(X)
        proba = mask_by_role(self.predict_proba(X), list(X[:, ROLE]), self.classes_)
        return decide(proba, self.classes_, self.class_factors_)


def _fit_soft(clf, F, votes: np.ndarray, classes: np.ndarray):
    """Fit ``clf`` on one copy of each row per act with votes, weighted by the act's share.

    Acts outside ``classes`` (absent from the majority labels) are left out, so the
    classifier's classes stay those of stage 2.
    """
    columns = [ACTS.index(c) for c in classes]
    shares = votes[:, columns]
    rows, which = np.nonzero(shares > 0)
    return clf.fit(F[rows], np.asarray(classes, dtype=object)[which], sample_weight=shares[rows, which])


# The nugget labels are role-specific by definition (CNUG* are customer turns, HNUG*
# helpdesk turns), so a turn whose speaker is known cannot carry the other party's acts.
# Calls start with an agent greeting where written helpdesk threads start with the
# problem; without this the position features call the greeting a problem statement.
ROLE_ACTS = {
    "agent": {"solution_offered", "other"},
    "customer": {"problem_stated", "solution_confirmed", "other"},
}


def mask_by_role(proba: np.ndarray, roles: list[str], classes: np.ndarray) -> np.ndarray:
    """Zero the acts a turn's speaker cannot perform and renormalise; unknown roles are left as they are."""
    out = proba.copy()
    for role, allowed in ROLE_ACTS.items():
        rows = np.fromiter((r == role for r in roles), dtype=bool, count=len(roles))
        if not rows.any():
            continue
        keep = np.array([c in allowed for c in classes])
        masked = np.where(keep, out[rows], 0.0)
        total = masked.sum(axis=1, keepdims=True)
        out[rows] = np.where(total > 0, masked / np.where(total > 0, total, 1.0), keep / keep.sum())
    return out


def decide(proba: np.ndarray, classes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    return np.asarray(classes)[np.argmax(proba * factors, axis=1)]


def macro_f1(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """Macro-F1 over class indexes; the tuning loop calls it thousands of times, f1_score is too slow."""
    confusion = np.bincount(truth * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(confusion).astype(float)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)
    return float(np.mean(np.divide(2 * tp, denominator, out=np.zeros(n_classes), where=denominator > 0)))


def tune_class_factors(proba: np.ndarray, y: np.ndarray, classes: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Per-class multipliers on the probabilities that maximise macro-F1 (coordinate ascent).

    Run on out-of-fold predictions of the training data only. The most frequent class
    keeps factor 1 (only ratios matter).
    """
    grid = np.geomspace(1 / 8, 32, 41)
    factors = np.ones(len(classes))
    anchor = int(np.argmax([np.sum(y == c) for c in classes]))

    truth = np.searchsorted(classes, y)

    def score(f):
        return macro_f1(truth, np.argmax(proba * f, axis=1), len(classes))

    best = score(factors)
    for _ in range(rounds):
        improved = False
        for k in range(len(classes)):
            if k == anchor:
                continue
            for value in grid:
                trial = factors.copy()
                trial[k] = value
                s = score(trial)
                if s > best + 1e-9:
                    best, factors, improved = s, trial, True
        if not improved:
            break
    return factors


# --- saving and loading -----------------------------------------------------------------------

# Everything a saved acts model may contain. Loading refuses any other type, so a
# tampered or foreign file cannot run code.
TRUSTED_TYPES = [
    f"{__name__}.ActClassifier",
    f"{__name__}.Tfidf",
    f"{__name__}.position_features",
    "numpy.float32",
    "numpy.float64",
    "numpy.ndarray",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn.svm._classes.LinearSVC",
]


def save_model(model: ActClassifier, path: str | Path) -> Path:
    return modelfiles.save(model, path)


def resolve_model_path(name_or_path: str | Path) -> Path:
    return modelfiles.resolve(name_or_path)


def load_model(name_or_path: str | Path) -> tuple[ActClassifier, str]:
    """(model, version string) for a model name or path; loaded once per process (again if the file changes)."""
    return modelfiles.load(name_or_path, TRUSTED_TYPES, ActClassifier, "acts model", "callpipe train acts")


# --- the spaCy component ----------------------------------------------------------------------

class ActsComponent:
    """Sets the ``act`` and ``act_confidence`` fields (turnstate.py) from the turn's text and context.

    Docs must arrive in conversation order. A dialogue starts wherever ``turn_index``
    does not increase; ``pipe`` never cuts a dialogue in two, so every turn sees its
    neighbours' predictions.
    """

    def __init__(self, name: str, model: ActClassifier, version: str):
        self.name = name
        self.model = model
        self.version = version

    def __call__(self, doc: Doc) -> Doc:
        self._tag([doc])
        return doc

    def pipe(self, docs: Iterable[Doc], batch_size: int = 256) -> Iterator[Doc]:
        for chunk in _whole_dialogue_batches(docs, batch_size):
            self._tag(chunk)
            yield from chunk

    def _tag(self, docs: list[Doc]) -> None:
        if not docs:
            return
        rows, dialogue, last = [], 0, None
        states = [state(doc) for doc in docs]
        for fields in states:
            index = int(fields["turn_index"])
            if last is not None and index <= last:
                dialogue += 1
            last = index
            role = fields["role"] if fields["role"] in ROLES else UNKNOWN
            rows.append([fields["text"], role, float(fields["position"]), index, fields["prev_text"] or "", fields["next_text"] or "", dialogue])
        proba = mask_by_role(self.model.predict_proba(as_table(rows)), [r[1] for r in rows], self.model.classes_)
        acts = decide(proba, self.model.classes_, self.model.class_factors_)
        column = {c: k for k, c in enumerate(self.model.classes_)}
        for fields, act, p in zip(states, acts, proba):
            fields["act"] = str(act)
            fields["act_confidence"] = float(p[column[act]])


def _whole_dialogue_batches(docs: Iterable[Doc], batch_size: int) -> Iterator[list[Doc]]:
    """Batches of about ``batch_size`` docs, cut only where a new dialogue starts."""
    batch: list[Doc] = []
    last = None
    for doc in docs:
        index = int(state(doc)["turn_index"])
        starts_dialogue = last is None or index <= last
        if starts_dialogue and len(batch) >= batch_size:
            yield batch
            batch = []
        batch.append(doc)
        last = index
    if batch:
        yield batch


@Language.factory("callpipe_acts", default_config={"model": "acts-en"})
def make_acts_component(nlp: Language, name: str, model: str) -> ActsComponent:
    estimator, version = load_model(model)
    return ActsComponent(name, estimator, version)
