"""Mono calls: who spoke which words, and which speaker is the agent.

What the audio says: every word of the transcript gets the speaker whose voice model
fits its frames best. Voices are modelled from the call itself: stretches of speech
(words between pauses) are first grouped by their average timbre (MFCC) and pitch,
then each group gets a Gaussian mixture over its frames, and a Viterbi pass over
the words picks one speaker per word, where changing speaker costs little at a pause
or a sentence end and a lot in the middle of a phrase. Two rounds refine the voices.

What the words say: a text classifier trained on labelled agent and customer
utterances (STC3 helpdesk dialogues, ABCD chats; see models/roles-*.md) scores each
stretch. The speaker whose words sound most like an agent is the agent, and in a
last Viterbi pass the text score of each stretch is added to the voice evidence,
weighted by ``diarize.text_weight``.

Separated speech comes back as segments on two pseudo channels, laid out like a
2-channel call: ``audio.agent_channel`` carries the agent, the other the customer.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import MODELS_DIR, DiarizeConfig
from .records import AGENT, CUSTOMER, UNKNOWN, Segment, Word
from .turns import join_text

SAMPLE_RATE = 16000
HOP = 160  # 10 ms frames
FPS = SAMPLE_RATE // HOP
N_MFCC = 19
PAUSE = 0.3  # seconds: a longer gap between words ends a stretch of speech
SENTENCE_END = re.compile(r"[.?!。？！]$")
SWITCH_AT_BOUNDARY = 1.0  # Viterbi cost (nats) of a speaker change at a pause or a sentence end
SWITCH_INSIDE = 8.0  # ... in the middle of a stretch
FRAME_WEIGHT = 0.1  # neighbouring 10 ms frames are far from independent: ~10 count as one observation
MIN_SPEECH_SECONDS = 4.0


# --- acoustic features ------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _mel_filters() -> np.ndarray:
    from faster_whisper.feature_extractor import FeatureExtractor

    return FeatureExtractor.get_mel_filters(SAMPLE_RATE, 400, n_mels=40).astype(np.float32)


def _frames(audio: np.ndarray, width: int) -> np.ndarray:
    """Centred frames every 10 ms (zero padded at the edges)."""
    n = len(audio) // HOP
    padded = np.pad(audio, (width // 2, width // 2 + HOP))
    return np.lib.stride_tricks.sliding_window_view(padded, width)[::HOP][:n]


def frame_features(audio: np.ndarray, block_seconds: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(MFCC 1-19 [T, 19], log F0 [T] (NaN when unvoiced), log energy [T]) at 100 frames/s.

    Computed in blocks so an hour-long call never needs more than a minute of spectra.
    """
    from scipy.fft import dct

    mfcc, pitch, energy = [], [], []
    window = np.hanning(400).astype(np.float32)
    mel = _mel_filters()
    step = block_seconds * SAMPLE_RATE
    for i in range(0, len(audio), step):
        block = audio[i : i + step].astype(np.float32)
        if len(block) < HOP:
            break
        frames = _frames(block, 400) * window
        power = np.abs(np.fft.rfft(frames, n=400)) ** 2
        logmel = np.log(np.maximum(power @ mel.T, 1e-10))
        mfcc.append(dct(logmel, type=2, norm="ortho", axis=1)[:, 1 : N_MFCC + 1].astype(np.float32))
        energy.append(np.log(power.sum(axis=1) + 1e-10).astype(np.float32))
        pitch.append(_log_f0(block))
    if not mfcc:
        return np.zeros((0, N_MFCC), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32)
    return np.concatenate(mfcc), np.concatenate(pitch), np.concatenate(energy)


def _log_f0(block: np.ndarray) -> np.ndarray:
    """Autocorrelation pitch (60-400 Hz) per 40 ms frame; NaN where the frame is not clearly periodic."""
    frames = _frames(block, 640)
    frames = frames - frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(frames, n=1024)
    ac = np.fft.irfft(np.abs(spec) ** 2, n=1024)[:, :300]
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    peak = ac[np.arange(len(ac)), lag] / np.maximum(ac[:, 0], 1e-10)
    f0 = np.log(SAMPLE_RATE / lag).astype(np.float32)
    f0[(peak < 0.5) | (ac[:, 0] < 1e-6)] = np.nan
    return f0


# --- stretches of speech ------------------------------------------------------------------------

@dataclass(frozen=True)
class WordRef:
    segment: int  # index of the source segment
    word: Word
    first: int  # frame range
    last: int
    stretch: int  # index of the stretch of speech it belongs to


def word_refs(segments: Sequence[Segment], n_frames: int) -> list[WordRef]:
    refs: list[WordRef] = []
    stretch = -1
    prev: Word | None = None
    ordered = sorted(((w.start, si, w) for si, s in enumerate(segments) for w in s.words), key=lambda t: (t[0], t[1]))
    for _start, si, w in ordered:
        if prev is None or w.start - prev.end > PAUSE or SENTENCE_END.search(prev.text):
            stretch += 1
        first = min(int(w.start * FPS), n_frames - 1)
        last = min(max(int(np.ceil(w.end * FPS)), first + 1), n_frames)
        refs.append(WordRef(si, w, max(first, 0), last, stretch))
        prev = w
    return refs


def _boundaries(refs: Sequence[WordRef]) -> np.ndarray:
    """True where word i starts a new stretch (a cheap place to change speaker)."""
    return np.array([i == 0 or refs[i].stretch != refs[i - 1].stretch for i in range(len(refs))])


# --- voice models -----------------------------------------------------------------------------

class Voices:
    """Standardised frame features and per-speaker voice models fitted on them."""

    def __init__(self, mfcc: np.ndarray, log_f0: np.ndarray, refs: Sequence[WordRef]):
        speech = np.zeros(len(mfcc), bool)
        for r in refs:
            speech[r.first : r.last] = True
        self.mean = mfcc[speech].mean(axis=0)
        self.std = mfcc[speech].std(axis=0) + 1e-6
        self.mfcc = (mfcc - self.mean) / self.std
        voiced = speech & ~np.isnan(log_f0)
        self.f0 = log_f0
        self.f0_spread = float(np.nanstd(log_f0[voiced])) if voiced.any() else 1.0

    def stretch_vectors(self, refs: Sequence[WordRef]) -> tuple[np.ndarray, np.ndarray]:
        """(one vector per stretch: MFCC mean and spread, median pitch, voiced share; its duration)."""
        n = refs[-1].stretch + 1
        frames: list[list[np.ndarray]] = [[] for _ in range(n)]
        for r in refs:
            frames[r.stretch].append(np.arange(r.first, r.last))
        global_f0 = float(np.nanmedian(self.f0)) if np.isfinite(self.f0).any() else 0.0
        vectors, durations = [], []
        for idx in frames:
            sel = np.concatenate(idx)
            f0 = self.f0[sel]
            voiced = np.isfinite(f0)
            vectors.append(
                np.concatenate(
                    [
                        self.mfcc[sel].mean(axis=0),
                        self.mfcc[sel].std(axis=0),
                        [np.median(f0[voiced]) if voiced.any() else global_f0, voiced.mean()],
                    ]
                )
            )
            durations.append(len(sel) / FPS)
        return np.array(vectors), np.array(durations)

    def fit(self, labels: np.ndarray, refs: Sequence[WordRef], k: int, seed: int = 0) -> list:
        """One diagonal GMM over MFCC frames and one Gaussian over log F0 per speaker."""
        from sklearn.mixture import GaussianMixture

        rng = np.random.default_rng(seed)
        models = []
        for spk in range(k):
            idx = np.concatenate([np.arange(r.first, r.last) for r, lab in zip(refs, labels) if lab == spk] or [np.zeros(0, int)])
            if len(idx) < 50:
                models.append(None)
                continue
            if len(idx) > 30000:  # a long call has plenty of frames; a sample describes the voice as well
                idx = np.sort(rng.choice(idx, 30000, replace=False))
            gmm = GaussianMixture(n_components=int(min(8, max(1, len(idx) // 200))), covariance_type="diag", reg_covar=1e-2, random_state=seed)
            gmm.fit(self.mfcc[idx])
            f0 = self.f0[idx]
            f0 = f0[np.isfinite(f0)]
            pitch = (float(np.mean(f0)), float(max(np.std(f0), 0.05))) if len(f0) >= 20 else None
            models.append((gmm, pitch))
        return models

    def word_scores(self, models: list, refs: Sequence[WordRef]) -> np.ndarray:
        """[n_words, k] log-likelihood of each word's frames under each speaker (scaled for frame correlation)."""
        n, k = len(refs), len(models)
        scores = np.full((n, k), -1e6)
        lengths = np.array([r.last - r.first for r in refs])
        starts = np.cumsum(np.concatenate([[0], lengths[:-1]]))
        idx = np.concatenate([np.arange(r.first, r.last) for r in refs])
        for spk, model in enumerate(models):
            if model is None:
                continue
            gmm, pitch = model
            frame_ll = gmm.score_samples(self.mfcc[idx])
            if pitch is not None:
                f0 = self.f0[idx]
                z = (f0 - pitch[0]) / pitch[1]
                pitch_ll = np.where(np.isfinite(z), -0.5 * np.nan_to_num(z) ** 2 - np.log(pitch[1]), 0.0)
                frame_ll = frame_ll + pitch_ll
            scores[:, spk] = FRAME_WEIGHT * np.add.reduceat(frame_ll, starts)
        return scores


def viterbi(scores: np.ndarray, boundary: np.ndarray) -> np.ndarray:
    """Best speaker per word given per-word scores and the cost of changing speaker."""
    n, k = scores.shape
    back = np.zeros((n, k), int)
    total = scores[0].copy()
    for i in range(1, n):
        cost = SWITCH_AT_BOUNDARY if boundary[i] else SWITCH_INSIDE
        trans = total[:, None] - cost * (1 - np.eye(k))
        back[i] = np.argmax(trans, axis=0)
        total = trans[back[i], np.arange(k)] + scores[i]
    path = np.zeros(n, int)
    path[-1] = int(np.argmax(total))
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def initial_labels(vectors: np.ndarray, durations: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Group stretches by voice: weighted k-means on standardised stretch vectors."""
    from sklearn.cluster import KMeans

    if len(vectors) < k:
        return np.arange(len(vectors)) % k
    z = (vectors - vectors.mean(axis=0)) / (vectors.std(axis=0) + 1e-6)
    # Stretches under half a second say little about a voice: fit on longer ones when there are enough.
    fit = durations >= 0.5 if (durations >= 0.5).sum() >= 2 * k else np.ones(len(z), bool)
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(z[fit], sample_weight=durations[fit])
    return km.predict(z)


def speaker_words(audio: np.ndarray, segments: Sequence[Segment], k: int, rounds: int = 2, text_prior=None):
    """(word refs, speaker per word, voices, models) for ``k`` speakers from the audio alone."""
    mfcc, log_f0, _energy = frame_features(audio)
    refs = word_refs(segments, len(mfcc))
    if not refs:
        return refs, np.zeros(0, int), None, None
    voices = Voices(mfcc, log_f0, refs)
    vectors, durations = voices.stretch_vectors(refs)
    stretch_label = initial_labels(vectors, durations, k)
    labels = np.array([stretch_label[r.stretch] for r in refs])
    boundary = _boundaries(refs)
    models = None
    for _ in range(rounds):
        models = voices.fit(labels, refs, k)
        labels = viterbi(voices.word_scores(models, refs), boundary)
    return refs, labels, voices, models


# --- text role model ----------------------------------------------------------------------------

ROLE_TRUSTED_TYPES = [
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
    "numpy.str_",
    "scipy.sparse._csr.csr_matrix",
    "sklearn.feature_extraction.text.HashingVectorizer",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.pipeline.Pipeline",
    "builtins.float",
]
_MENTION = re.compile(r"@\s?[\w\u4e00-\u9fff]+|\[[^\]]{1,8}\]|https?://\S+")


def clean_text(text: str) -> str:
    """What written helpdesk posts have and speech transcripts do not: @mentions, [emoticons], links."""
    return re.sub(r"\s+", " ", _MENTION.sub(" ", text)).strip()


def _hashed_tfidf(**vectorizer):
    """TF-IDF over hashed n-grams: no vocabulary to store, so the model file stays small."""
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.pipeline import Pipeline

    return Pipeline([("hash", HashingVectorizer(n_features=2**17, alternate_sign=False, norm=None, **vectorizer)), ("tfidf", TfidfTransformer(sublinear_tf=True))])


def role_pipeline(lang: str):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    if lang == "zh":
        features = FeatureUnion([("char", _hashed_tfidf(analyzer="char", ngram_range=(1, 3)))])
    else:
        features = FeatureUnion([("word", _hashed_tfidf(ngram_range=(1, 2))), ("char", _hashed_tfidf(analyzer="char_wb", ngram_range=(2, 5)))])
    return Pipeline([("features", features), ("clf", LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced"))])


def role_model_path(name_or_path: str, language: str = "en") -> Path:
    """A bare name means models/NAME.skops; 'roles-en' becomes 'roles-zh' for Mandarin calls."""
    if language.startswith("zh") and name_or_path == "roles-en":
        name_or_path = "roles-zh"
    text = str(name_or_path)
    if "/" in text or text.endswith(".skops"):
        return Path(text)
    return MODELS_DIR / f"{text}.skops"


@functools.lru_cache(maxsize=4)
def _load_role_model(path: Path, _mtime: float):
    import skops.io as sio

    data = path.read_bytes()
    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(ROLE_TRUSTED_TYPES))
    if untrusted:
        raise ValueError(f"{path}: refusing to load, it contains untrusted types {untrusted}")
    model = sio.loads(data, trusted=ROLE_TRUSTED_TYPES)
    if list(model.classes_) != [AGENT, CUSTOMER]:
        raise ValueError(f"{path}: expected classes ['agent', 'customer'], got {list(model.classes_)}")
    return model, f"{path.stem}@sha256:{hashlib.sha256(data).hexdigest()[:12]}"


def load_role_model(name_or_path: str, language: str = "en"):
    """(pipeline, version) or (None, reason) when no model is available for this language."""
    path = role_model_path(name_or_path, language).resolve()
    if not path.is_file():
        return None, f"{path}: role model not found (rebuild with `python -m pipeline.diarize train --data DIR`)"
    return _load_role_model(path, path.stat().st_mtime)


def agent_log_odds(model, texts: Sequence[str]) -> np.ndarray:
    """log P(agent) - log P(customer) per text; 0 for empty text."""
    cleaned = [clean_text(t) for t in texts]
    out = np.zeros(len(texts))
    idx = [i for i, t in enumerate(cleaned) if t]
    if idx:
        proba = np.clip(model.predict_proba([cleaned[i] for i in idx])[:, 0], 1e-4, 1 - 1e-4)
        out[idx] = np.log(proba) - np.log1p(-proba)
    return out


# --- roles --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Separation:
    segments: tuple[Segment, ...]
    roles: dict[int, str]
    summary: dict
    words: tuple[tuple[float, float, int], ...] = ()
    """(start, end, speaker index) of every word, in time order (for speaker-timing evaluation)."""


def _stretch_texts(refs: Sequence[WordRef], labels: np.ndarray) -> tuple[list[str], list[int], list[list[int]]]:
    """Text, speaker and word indices of each run of one speaker within one stretch."""
    texts, speakers, members = [], [], []
    for i, r in enumerate(refs):
        if i == 0 or r.stretch != refs[i - 1].stretch or labels[i] != labels[i - 1]:
            texts.append("")
            speakers.append(int(labels[i]))
            members.append([])
        texts[-1] = join_text(texts[-1], r.word.text)
        members[-1].append(i)
    return texts, speakers, members


def separate_roles(
    audio: np.ndarray,
    segments: Sequence[Segment],
    language: str,
    cfg: DiarizeConfig,
    agent_channel: int = 0,
) -> Separation:
    """Split a mono call's segments by speaker and name the agent and the customer."""
    k = cfg.speakers
    speech = sum(w.end - w.start for s in segments for w in s.words)
    if speech < MIN_SPEECH_SECONDS or k < 2:
        return Separation(tuple(segments), {s.channel: UNKNOWN for s in segments}, {"speakers": 1, "reason": "too little speech"})
    refs, labels, voices, models = speaker_words(audio, segments, k)
    model, version = load_role_model(cfg.roles_model, language)
    summary: dict = {"speakers": k, "role_model": version if model is not None else None}
    if model is None:
        print(f"callpipe: warning: {version}; mono speakers get role 'unknown'", file=sys.stderr)
        roles_of = {spk: UNKNOWN for spk in range(k)}
    else:
        texts, speakers, members = _stretch_texts(refs, labels)
        odds = agent_log_odds(model, texts)
        weights = np.array([len(m) for m in members], float)
        mean_odds = {spk: float(np.average(odds[[s == spk for s in speakers]], weights=weights[[s == spk for s in speakers]])) if spk in speakers else -np.inf for spk in range(k)}
        agent = max(mean_odds, key=mean_odds.get)
        roles_of = {spk: AGENT if spk == agent else CUSTOMER for spk in range(k)}
        summary["agent_text_score"] = {str(s): round(v, 3) for s, v in mean_odds.items() if np.isfinite(v)}
        if cfg.text_weight > 0 and k == 2:
            # Let the words of each stretch argue, too: their log-odds spread over the stretch's words.
            scores = voices.word_scores(models, refs)
            word_odds = np.zeros(len(refs))
            stretches = _stretches(refs)
            stretch_text = [" ".join(refs[i].word.text for i in idx) for idx in stretches]
            for text_odds, idx in zip(agent_log_odds(model, stretch_text), stretches):
                word_odds[idx] = text_odds / len(idx)
            scores[:, agent] += cfg.text_weight * word_odds
            labels = viterbi(scores, _boundaries(refs))
    channel_of = _channels(roles_of, agent_channel, k)
    out = _segments_by_speaker(segments, refs, labels, channel_of)
    roles = {channel_of[spk]: roles_of[spk] for spk in range(k)}
    named = k == 2 and AGENT in roles_of.values()
    summary["speech_seconds"] = {
        (roles_of[s] if named else f"speaker{s}"): round(float(sum(r.word.end - r.word.start for r, lab in zip(refs, labels) if lab == s)), 2) for s in range(k)
    }
    return Separation(out, roles, summary, tuple((r.word.start, r.word.end, int(lab)) for r, lab in zip(refs, labels)))


def _stretches(refs: Sequence[WordRef]) -> list[list[int]]:
    groups: list[list[int]] = []
    for i, r in enumerate(refs):
        if i == 0 or r.stretch != refs[i - 1].stretch:
            groups.append([])
        groups[-1].append(i)
    return groups


def _channels(roles_of: dict[int, str], agent_channel: int, k: int) -> dict[int, int]:
    """Two speakers sit where a stereo call would put them; more speakers get channels 0..k-1."""
    if k == 2 and AGENT in roles_of.values():
        agent = next(s for s, r in roles_of.items() if r == AGENT)
        return {agent: agent_channel, 1 - agent: 1 - agent_channel}
    return {s: s for s in range(k)}


def _segments_by_speaker(segments, refs, labels, channel_of) -> tuple[Segment, ...]:
    """Runs of one speaker's words within one source segment become one segment on that speaker's channel."""
    out: list[Segment] = []
    by_segment: dict[int, list[tuple[Word, int]]] = {}
    for r, lab in zip(refs, labels):
        by_segment.setdefault(r.segment, []).append((r.word, int(lab)))
    for si, items in sorted(by_segment.items()):
        src = segments[si]
        run: list[Word] = []
        for j, (word, lab) in enumerate(items):
            run.append(word)
            if j + 1 == len(items) or items[j + 1][1] != lab:
                text = ""
                for w in run:
                    text = join_text(text, w.text)
                out.append(dataclasses.replace(src, channel=channel_of[lab], start=run[0].start, end=run[-1].end, text=text, words=tuple(run)))
                run = []
    return tuple(sorted(out, key=lambda s: (s.start, s.channel)))


# --- training the text role model -------------------------------------------------------------

STC3_FILES = {"en": "train_data_en.json", "zh": "train_data_cn.json"}
SPLIT_SEED = 0


def _stc3_utterances(path: Path) -> tuple[list[str], list[str], list[str]]:
    """(text, role, dialogue id) per utterance; STC3 helpdesk = agent, customer = customer."""
    texts, roles, groups = [], [], []
    for item in json.loads(path.read_text(encoding="utf-8")):
        for turn in item["turns"]:
            role = AGENT if turn["sender"] == "helpdesk" else CUSTOMER
            for utt in turn["utterances"]:
                utt = clean_text(utt)
                if utt:
                    texts.append(utt)
                    roles.append(role)
                    groups.append(f"stc3-{item['id']}")
    return texts, roles, groups


def _abcd_utterances(path: Path) -> tuple[list[str], list[str], list[str]]:
    texts, roles, groups = [], [], []
    for convo in json.loads(path.read_text(encoding="utf-8")):
        for speaker, text in convo["original"]:
            if speaker in (AGENT, CUSTOMER) and clean_text(text):
                texts.append(clean_text(text))
                roles.append(speaker)
                groups.append(f"abcd-{convo['convo_id']}")
    return texts, roles, groups


def role_training_data(data_dir: Path, lang: str) -> dict[str, tuple[list[str], list[str], list[str]]]:
    sources = {}
    stc3 = data_dir / "text_stc3_helpdesk" / STC3_FILES[lang]
    if not stc3.is_file():
        raise FileNotFoundError(f"{stc3}: STC3 training file not found")
    sources["stc3"] = _stc3_utterances(stc3)
    abcd = data_dir / "text_abcd_sample" / "abcd_sample.json"
    if lang == "en" and abcd.is_file():
        sources["abcd"] = _abcd_utterances(abcd)
    return sources


def evaluate_role_model(data_dir: Path, lang: str) -> dict:
    """Held-out accuracy: STC3 split by dialogue (20 %), and each ABCD dialogue left out in turn."""
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import GroupShuffleSplit

    sources = role_training_data(data_dir, lang)
    texts, roles, groups = sources["stc3"]
    tr, te = next(GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=SPLIT_SEED).split(texts, groups=groups))
    extra = sources.get("abcd", ([], [], []))
    model = role_pipeline(lang).fit([texts[i] for i in tr] + extra[0], [roles[i] for i in tr] + extra[1])
    pred = model.predict([texts[i] for i in te])
    truth = [roles[i] for i in te]
    metrics = {
        "stc3_test_utterances": len(te),
        "stc3_accuracy": round(float(accuracy_score(truth, pred)), 4),
        "stc3_macro_f1": round(float(f1_score(truth, pred, average="macro")), 4),
    }
    if extra[0]:
        correct = total = 0
        for held in sorted(set(extra[2])):
            keep = [i for i, g in enumerate(extra[2]) if g != held]
            test = [i for i, g in enumerate(extra[2]) if g == held]
            m = role_pipeline(lang).fit(texts + [extra[0][i] for i in keep], roles + [extra[1][i] for i in keep])
            p = m.predict([extra[0][i] for i in test])
            correct += sum(a == extra[1][i] for a, i in zip(p, test))
            total += len(test)
        metrics["abcd_leave_one_dialogue_out_accuracy"] = round(correct / total, 4)
        metrics["abcd_utterances"] = total
    return metrics


def train_role_model(data_dir: str | Path, lang: str = "en", out: str | Path | None = None) -> Path:
    """Fit on all labelled utterances, save models/roles-LANG.skops and its card."""
    import datetime as dt
    import zipfile

    import skops.io as sio

    data_dir = Path(data_dir)
    out = Path(out) if out else MODELS_DIR / f"roles-{lang}.skops"
    sources = role_training_data(data_dir, lang)
    metrics = evaluate_role_model(data_dir, lang)
    texts = [t for s in sources.values() for t in s[0]]
    roles = [r for s in sources.values() for r in s[1]]
    model = role_pipeline(lang).fit(texts, roles)
    out.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(model, out, compression=zipfile.ZIP_DEFLATED)
    counts = {name: {AGENT: s[1].count(AGENT), CUSTOMER: s[1].count(CUSTOMER), "dialogues": len(set(s[2]))} for name, s in sources.items()}
    digests = {}
    for name, rel in (("stc3", f"text_stc3_helpdesk/{STC3_FILES[lang]}"), ("abcd", "text_abcd_sample/abcd_sample.json")):
        if name in sources:
            digests[name] = (rel, hashlib.sha256((data_dir / rel).read_bytes()).hexdigest())
    lines = [
        f"# {out.stem}: agent or customer, from the words alone ({'English' if lang == 'en' else 'Chinese'})",
        "",
        f"- Built: {dt.date.today().isoformat()}",
        f"- Rebuild: `python -m pipeline.diarize train --data {data_dir} --lang {lang}`",
        f"- File: `{out.name}` ({out.stat().st_size / 1e6:.2f} MB, skops format, no pickle; load with `pipeline.diarize.load_role_model`)",
        "- Estimator: scikit-learn Pipeline: TF-IDF (sublinear) over hashed (2^17 buckets) "
        + ("character 1-3-grams" if lang == "zh" else "word 1-2-grams + character 2-5-grams (within words)")
        + " -> LogisticRegression(C=4, class_weight='balanced'); classes ['agent', 'customer'].",
        "- Used by: mono calls (`pipeline.diarize.separate_roles`): the separated speaker whose words score most agent-like is the agent.",
        "",
        "## Data",
        "",
        *[f"- {name}: `{rel}` sha256 `{digest}`; {counts[name]['dialogues']} dialogues, {counts[name][AGENT]} agent / {counts[name][CUSTOMER]} customer utterances."
          for name, (rel, digest) in digests.items()],
        "- STC3 (NTCIR-14, annotations CC BY 4.0, text crawled from Weibo): sender helpdesk -> agent, customer -> customer; every utterance is one example."
        + (" English manual translations." if lang == "en" else ""),
        *(["- ABCD sample (MIT): speakers agent / customer of 3 chat dialogues; action lines are left out."] if "abcd" in sources else []),
        "- Cleaning: @mentions, [emoticons] and links are removed (written-post artefacts that speech never has).",
        "",
        "## Evaluation",
        "",
        f"- STC3 split by dialogue (seed {SPLIT_SEED}, 20 % held out, {metrics['stc3_test_utterances']} test utterances): "
        f"accuracy {metrics['stc3_accuracy']:.3f}, macro-F1 {metrics['stc3_macro_f1']:.3f}.",
        *([f"- ABCD, each dialogue held out in turn ({metrics['abcd_utterances']} utterances, out of domain for STC3): accuracy {metrics['abcd_leave_one_dialogue_out_accuracy']:.3f}."]
          if "abcd_utterances" in metrics else []),
        "- The shipped model is refit on everything above. In a call it is used per speaker (many utterances), where single-utterance errors average out.",
        "",
        "## Limits",
        "",
        "- Written helpdesk text, not speech: short spoken answers (\"yes\", \"okay\") carry no role signal and score near 0.",
        "- Trained on customer service; on other conversations (meetings, sales) the agent/customer naming means little.",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(lines), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pipeline.diarize", description="rebuild the text role models")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train models/roles-LANG.skops from STC3 (+ ABCD for English)")
    train.add_argument("--data", type=Path, required=True, help="data folder holding text_stc3_helpdesk/ (and text_abcd_sample/)")
    train.add_argument("--lang", choices=["en", "zh", "all"], default="all")
    args = parser.parse_args(argv)
    for lang in (["en", "zh"] if args.lang == "all" else [args.lang]):
        print(f"wrote {train_role_model(args.data, lang)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
