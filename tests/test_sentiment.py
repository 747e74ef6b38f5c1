"""Per-turn sentiment (English and Mandarin) and the customer's sentiment over a call."""

from __future__ import annotations

import pytest

from pipeline.records import AGENT, CUSTOMER, Turn, TurnTags
from pipeline.scoring import sentiment_change
from pipeline.tagging.sentiment import customer_sentiment_arc, is_mostly_chinese, score_text


@pytest.mark.parametrize("text", [
    "Thank you so much, that's wonderful, you fixed it!",
    "Great, I really appreciate your help.",
])
def test_english_positive(text):
    assert 0.3 < score_text(text) <= 1.0


@pytest.mark.parametrize("text", [
    "This is terrible, I'm really angry and I want to cancel.",
    "I'm not happy at all, the car broke down again.",
])
def test_english_negative(text):
    assert -1.0 <= score_text(text) < -0.3


def test_neutral_and_empty():
    assert abs(score_text("My account number is on the letter.")) < 0.3
    assert score_text("") == 0.0 and score_text("   ") == 0.0


@pytest.mark.parametrize("text, sign", [
    ("非常好，谢谢你的帮助，我很满意", 1),
    ("质量太差了，我很生气，要退货", -1),
    ("服务态度很好，问题解决了", 1),
    ("等了一个星期还没发货，太失望了", -1),
])
def test_mandarin(text, sign):
    score = score_text(text)
    assert -1.0 <= score <= 1.0
    assert score * sign > 0.2, score


def test_script_decides_the_scorer():
    assert is_mostly_chinese("我的订单 ABC123 还没到")
    assert not is_mostly_chinese("my order 订单 has not arrived yet")


# Negations, idioms, boosters, "but", "least", capitals, punctuation and emoji, at both ends
# of a turn and in long turns, where the faster checks read a window of the words.
VADER_CASES = [
    "No, I'm not happy at all, and it's never so easy to reach you guys, but the agent was GREAT!!",
    "Without doubt the best service. Kind of slow, sort of okay, but at least it works.",
    "It's the least helpful answer; very least I expected a callback. Not bad, not good either?",
    "That product is the bomb, it cuts the mustard, no problem at all 😀 thanks :)",
    "Never this bad. I hate it. Don't cancel, I'm just upset, kind of",
    "yeah " * 40 + "but honestly, it was not great, never so slow, and I'm not at all satisfied",
    "I am extremely UNHAPPY, not at all, no doubt... hell no 😡",
    "So we got the kiss of death from the bank, and then a broken heart, yeah right",
    "good",
    "not",
    "It was kind of good but not GREAT, no worse than before",
]


@pytest.mark.parametrize("text", VADER_CASES)
def test_english_scores_are_vaders_own(text):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from pipeline.tagging.sentiment import _vader

    assert _vader().polarity_scores(text) == SentimentIntensityAnalyzer().polarity_scores(text)



def test_customer_start_end_and_change_agree_with_scoring():
    turns, tags = [], []
    for i, (role, s) in enumerate([(CUSTOMER, -0.8), (AGENT, 0.5), (CUSTOMER, -0.4), (CUSTOMER, 0.2), (AGENT, 0.9),
                                   (CUSTOMER, 0.6), (CUSTOMER, 0.7), (CUSTOMER, 0.9)]):
        turns.append(Turn(index=i, role=role, start=float(i), end=i + 0.5, text="x"))
        tags.append(TurnTags(sentiment=s))
    arc = customer_sentiment_arc(turns, tags)
    assert arc == {"start": -0.6, "end": 0.8, "change": 1.4}
    assert sentiment_change(turns, tags) == arc["change"]


def test_tagger_gives_every_turn_a_sentiment():
    from pipeline.config import TaggingConfig
    from pipeline.tagging.nlp import Tagger, build_nlp

    turns = [Turn(0, CUSTOMER, 0.0, 1.0, "My car broke down again and I'm furious."),
             Turn(1, AGENT, 1.0, 2.0, "I'm so sorry. We'll fix it today at no charge."),
             Turn(2, CUSTOMER, 2.0, 3.0, "Thank you, that's great!")]
    tags = Tagger(build_nlp(TaggingConfig(), "en", intents=False)).tag(turns)
    assert tags[0].sentiment < 0 < tags[2].sentiment
    assert sentiment_change(turns, tags) > 0.5
