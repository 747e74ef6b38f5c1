"""The fast TF-IDF transform used when tagging gives scikit-learn's numbers."""

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from pipeline.tagging.tfidf import FastTfidf, fast_tfidf

TRAIN = ["my bill is wrong", "the router light is red", "I want a refund for my bill", "thanks, that fixed it", "我的宽带断了"]
TEXTS = np.array(["my bill is red", "My  BILL\tis réd\n", "", "words never seen", "refund refund refund", "宽带", None], dtype=object)


def test_vectorizers_that_analyse_alike_or_not_give_sklearns_numbers():
    vectorizers = [
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True).fit(TRAIN),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), max_features=30).fit(TRAIN[:3]),  # analyses alike, smaller vocabulary
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32).fit(TRAIN),
        TfidfVectorizer(norm=None, use_idf=False).fit(TRAIN),
    ]
    fast = FastTfidf(vectorizers)
    cache: dict = {}
    texts = [t if isinstance(t, str) else "" for t in TEXTS]
    for v in vectorizers:
        got = fast.transform(v, TEXTS, cache)
        want = v.transform(texts)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert np.allclose(got.toarray(), want.toarray(), atol=1e-6)
    assert fast.transform(vectorizers[0], [], cache).shape == (0, len(vectorizers[0].vocabulary_))


def test_one_fast_transform_per_fitted_model():
    owner = TfidfVectorizer().fit(TRAIN)  # any object can own the vectorizers
    assert fast_tfidf(owner, [owner]) is fast_tfidf(owner, [owner])


def test_later_calls_for_one_batch_add_their_new_texts():
    vectorizers = [TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True).fit(TRAIN),
                   TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3)).fit(TRAIN[1:])]
    fast = FastTfidf(vectorizers)
    cache: dict = {}
    # As a turn's neighbours are: mostly texts the batch has seen, some not ("" at the ends).
    for v, texts in [(vectorizers[0], TRAIN[:3]), (vectorizers[1], ["", *TRAIN[:2]]), (vectorizers[0], ["new words", TRAIN[4], "bill bill"])]:
        got = fast.transform(v, texts, cache)
        assert np.allclose(got.toarray(), v.transform(texts).toarray(), atol=1e-6)
