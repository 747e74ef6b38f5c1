from pipeline.records import Segment, Word
from pipeline.turns import build_turns, join_text


def seg(channel, start, end, text, words=()):
    return Segment(channel=channel, start=start, end=end, text=text, words=tuple(words))


def test_channels_interleave_in_time_order_with_roles():
    segments = [seg(0, 0.0, 2.0, "Hello, how can I help?"), seg(1, 2.5, 4.0, "My car broke."), seg(0, 4.5, 6.0, "Sorry to hear."), seg(0, 6.2, 7.0, "Which model?")]
    turns = build_turns(segments, {0: "agent", 1: "customer"}, split_pause=1.0, max_pause=5.0)
    assert [t.role for t in turns] == ["agent", "customer", "agent"]
    assert turns[2].text == "Sorry to hear. Which model?"
    assert [t.index for t in turns] == [0, 1, 2]


def test_long_segment_is_cut_where_the_other_party_speaks():
    words = [Word(0.0, 0.5, "My", 1), Word(0.5, 1.0, "name", 1), Word(8.0, 8.5, "T-I-L-L-E.", 1)]
    segments = [seg(1, 0.0, 8.5, "My name T-I-L-L-E.", words), seg(0, 2.0, 4.0, "Could you spell it?")]
    turns = build_turns(segments, {0: "agent", 1: "customer"}, split_pause=1.0, max_pause=5.0)
    assert [(t.role, t.text) for t in turns] == [("customer", "My name"), ("agent", "Could you spell it?"), ("customer", "T-I-L-L-E.")]


def test_mono_calls_have_unknown_speakers():
    turns = build_turns([seg(0, 0, 1, "Hi"), seg(0, 10, 11, "Bye")], {}, split_pause=1.0, max_pause=5.0)
    assert [t.role for t in turns] == ["unknown", "unknown"]


def test_chinese_text_is_joined_without_spaces():
    assert join_text("你好", "我想退款") == "你好我想退款"
    assert join_text("hello", "world") == "hello world"
