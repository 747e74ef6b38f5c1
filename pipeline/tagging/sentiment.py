"""Per-turn sentiment in [-1, 1]: the `callpipe_sentiment` spaCy component.

English turns are scored by VADER (vaderSentiment), a lexicon and rule set built
and validated on human ratings; its ``compound`` score is already in [-1, 1].

Mandarin turns are scored with the naive Bayes model that SnowNLP ships, trained on
real labelled product reviews. Importing ``snownlp`` itself loads its segmenter and
tagger (over ten seconds, and ~20 ms per sentence), so only the model file is read
here and turns are segmented by forward maximum matching over the model's own
vocabulary: the same word counts, at dictionary-lookup speed. The score is
2 * P(positive) - 1.

Which scorer runs is decided per turn by its script, not by the call's language:
Whisper often writes English words inside a Mandarin call and the other way round.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import marshal
import math
import re
from collections.abc import Sequence
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc

from ..records import CUSTOMER, Turn, TurnTags
from .turnstate import state

_CJK = re.compile(r"[\u4e00-\u9fff]")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")
_MAX_WORD = 4  # SnowNLP's vocabulary has longer entries, but they are too rare to matter


def is_mostly_chinese(text: str) -> bool:
    """True when at least a third of the turn's non-space characters are Chinese."""
    chars = len(text) - text.count(" ")
    return chars > 0 and len(_CJK.findall(text)) * 3 >= chars


def _fast_vader_class():
    from vaderSentiment.vaderSentiment import BOOSTER_DICT, SentimentIntensityAnalyzer, SentiText

    base = SentimentIntensityAnalyzer

    class FastVader(base):
        """VADER's scores without two costs of vaderSentiment 3.3.2 that grow with a turn's length.

        Its negation and idiom checks, run up to three times per lexicon word, lower-case
        every word of the turn on each call, though they read at most three words before
        the current one and two after: here they are given just that window (same indexes
        relative to the word, same answers). And text without emoji skips the emoji pass,
        which rebuilds the text one character at a time; it would return the text unchanged.
        Tests check the scores against the library's own analyser.
        """

        def __init__(self):
            super().__init__()
            self.emoji_chars = frozenset(self.emojis)

        @staticmethod
        def _negation_check(valence, words_and_emoticons, start_i, i):
            lo = max(0, i - 3)
            return base._negation_check(valence, words_and_emoticons[lo:i + 1], start_i, i - lo)

        @staticmethod
        def _special_idioms_check(valence, words_and_emoticons, i):
            lo = max(0, i - 3)
            return base._special_idioms_check(valence, words_and_emoticons[lo:i + 3], i - lo)

        def polarity_scores(self, text):
            if not self.emoji_chars.isdisjoint(text):
                return super().polarity_scores(text)
            # The rest of SentimentIntensityAnalyzer.polarity_scores, each word lower-cased once;
            # sentiment_valence gives a word outside the lexicon 0, so it runs only for the others.
            text = text.strip()
            sentitext = SentiText(text)
            sentiments = []
            words_and_emoticons = sentitext.words_and_emoticons
            lowered = [w.lower() for w in words_and_emoticons]
            lexicon, last = self.lexicon, len(lowered) - 1
            for i, low in enumerate(lowered):
                if low not in lexicon or low in BOOSTER_DICT or (low == "kind" and i < last and lowered[i + 1] == "of"):
                    sentiments.append(0)
                else:
                    sentiments = self.sentiment_valence(0, sentitext, words_and_emoticons[i], i, sentiments)
            if "but" in lowered:  # _but_check changes nothing otherwise
                sentiments = self._but_check(words_and_emoticons, sentiments)
            return self.score_valence(sentiments, text)

    return FastVader


@functools.lru_cache(maxsize=1)
def _vader():
    return _fast_vader_class()()


def score_english(text: str) -> float:
    return float(_vader().polarity_scores(text)["compound"])


class ChineseBayes:
    """SnowNLP's sentiment naive Bayes, with a fast segmenter over its vocabulary."""

    def __init__(self, path: Path):
        with gzip.open(path, "rb") as f:
            data = marshal.loads(f.read())
        neg, pos = data["d"]["neg"], data["d"]["pos"]
        self.prior = math.log(pos["total"]) - math.log(neg["total"])
        self.neg, self.pos = neg["d"], pos["d"]
        self.neg_total, self.pos_total = neg["total"], pos["total"]
        self.neg_none, self.pos_none = neg["none"], pos["none"]
        self.vocab = set(self.neg) | set(self.pos)
        stop = path.parent.parent / "normal" / "stopwords.txt"
        self.stop = set(stop.read_text(encoding="utf-8").split()) if stop.exists() else set()

    def words(self, text: str) -> list[str]:
        out = []
        for run in _CJK_RUN.findall(text):
            i = 0
            while i < len(run):
                for n in range(min(_MAX_WORD, len(run) - i), 0, -1):
                    if n == 1 or run[i:i + n] in self.vocab:
                        out.append(run[i:i + n])
                        i += n
                        break
        return [w for w in out if w not in self.stop]

    def score(self, text: str) -> float:
        log_odds = self.prior
        for w in self.words(text):
            # AddOneProb as SnowNLP stores it: count, or `none` for unseen words, over the total.
            log_odds += math.log(self.pos.get(w, self.pos_none) / self.pos_total)
            log_odds -= math.log(self.neg.get(w, self.neg_none) / self.neg_total)
        log_odds = max(-30.0, min(30.0, log_odds))
        p_pos = 1.0 / (1.0 + math.exp(-log_odds))
        return 2.0 * p_pos - 1.0


@functools.lru_cache(maxsize=1)
def _chinese() -> ChineseBayes | None:
    spec = importlib.util.find_spec("snownlp")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "sentiment" / "sentiment.marshal.3"
    return ChineseBayes(path) if path.exists() else None


@functools.lru_cache(maxsize=8192)  # short turns ("Okay.", "Thank you.") recur in every call
def score_text(text: str) -> float:
    """Sentiment of one turn's text in [-1, 1]; 0 for empty text or no usable model."""
    if not text.strip():
        return 0.0
    if is_mostly_chinese(text):
        model = _chinese()
        return round(model.score(text), 4) if model is not None else 0.0
    return round(score_english(text), 4)


def customer_sentiment_arc(turns: Sequence[Turn], tags: Sequence[TurnTags]) -> dict[str, float | None]:
    """The customer's sentiment at the start (mean of their first third of turns), at the end
    (last third) and the change; the same thirds as scoring.sentiment_change. None when the
    customer has fewer than two turns."""
    values = [float(tag.sentiment) for turn, tag in zip(turns, tags) if turn.role == CUSTOMER]
    if len(values) < 2:
        return {"start": None, "end": None, "change": None}
    k = max(1, len(values) // 3)
    start, end = sum(values[:k]) / k, sum(values[-k:]) / k
    return {"start": round(start, 3), "end": round(end, 3), "change": round(end - start, 3)}


class SentimentComponent:
    version = "vader-3.3.2+snownlp-0.12.3"

    def __init__(self, name: str):
        self.name = name
        # Load both scorers now so the first call does not pay for them.
        _vader()
        _chinese()

    def __call__(self, doc: Doc) -> Doc:
        fields = state(doc)
        fields["sentiment"] = score_text(fields["text"])
        return doc


@Language.factory("callpipe_sentiment")
def make_sentiment_component(nlp: Language, name: str) -> SentimentComponent:
    return SentimentComponent(name)
