"""Measure the analytics against people, on STC3 dialogues held out from everything fitted.

- ``evaluate_scores``: Spearman correlation between callpipe's efficiency score and the
  annotators' mean dialogue effectiveness (E), task accomplishment (A) and customer
  satisfaction (S).
- ``evaluate_suggest``: next helpdesk act hits@1/hits@3 versus the most-frequent-act
  baseline, and how close the best of the top-3 suggested responses is to the real next
  helpdesk response versus random historic responses to the same intent.

Both split the STC3 training file by dialogue exactly as ``callpipe evaluate acts`` does
(or take ``--train``/``--test`` files). An acts model is fitted on the training
dialogues only (the shipped models have seen every published dialogue), and tags the
held-out ones, so the score is computed as in production: from tagged turns.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from .config import Config
from .records import AGENT, CUSTOMER, Call, TurnTags

SPLIT_SEED = 0
TEST_SIZE = 0.2
TRAIN_FILES = {"en": "train_data_en.json", "zh": "train_data_cn.json"}
# Components that text transcripts can measure; the weights fitted on STC3 are chosen among them.
TEXT_COMPONENTS = ("resolution", "talk_balance", "handle_time", "solution_offered", "confirmation", "speed_to_solution", "customer_effort")
WEIGHT_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
# The acts model's settings beyond its defaults (the shipped models use the defaults).
ACTS_PARAMS: dict = {}
# Folds for the out-of-fold tags of the training dialogues that the weights are fitted on.
OOF_FOLDS = 3


# --- data -------------------------------------------------------------------------------------------

def stc3_file(data: str | Path, lang: str) -> Path:
    data = Path(data)
    folder = data / "text_stc3_helpdesk" if (data / "text_stc3_helpdesk").is_dir() else data
    path = folder / TRAIN_FILES[lang]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: STC3 training file not found")
    return path


def split_calls(calls: Sequence[Call], seed: int = SPLIT_SEED, test_size: float = TEST_SIZE) -> tuple[list[Call], list[Call]]:
    """The same dialogue-level split as ``callpipe evaluate acts`` (ids in file order)."""
    from sklearn.model_selection import GroupShuffleSplit

    ids = [c.metadata.get("dialogue_id", c.call_id) for c in calls]
    train_idx, test_idx = next(GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed).split(ids, groups=ids))
    return [calls[i] for i in train_idx], [calls[i] for i in test_idx]


def load_split(data, lang: str, train, test) -> tuple[list[Call], list[Call], str]:
    from .importers import load_transcripts

    if train is not None and test is not None:
        tr, te = load_transcripts(train), load_transcripts(test)
        source = f"train={train} test={test}"
    elif data is not None:
        path = stc3_file(data, lang)
        tr, te = split_calls(load_transcripts(path))
        source = f"{path} split by dialogue, seed {SPLIT_SEED}, {TEST_SIZE:.0%} held out"
    else:
        raise ValueError("give data=DIR or both train= and test= files")
    for name, calls in (("train", tr), ("test", te)):
        if not calls or any("reference" not in c.metadata for c in calls):
            raise ValueError(f"the {name} dialogues must all carry STC3 annotations")
    return tr, te, source


def reference_tags(call: Call) -> list[TurnTags]:
    """The annotators' majority act per turn, with their agreement as the confidence."""
    ref = call.metadata["reference"]
    return [TurnTags(act=a, act_confidence=g) for a, g in zip(ref["acts"], ref["act_agreement"])]


# --- tagging with an acts model fitted on the training dialogues ---------------------------------

def _cache_dir() -> Path | None:
    """Where fitted evaluation models are kept, so `evaluate suggest` after `evaluate scores` fits nothing twice."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "callpipe" / "eval"


CACHE_DIR: Path | None = _cache_dir()


def fit_acts(calls: Sequence[Call], lang: str):
    """An acts model fitted on ``calls`` (their annotators' acts); cached on disk by content."""
    from .tagging.acts import ActClassifier, as_table, dialogue_rows, load_model, save_model

    lang = "zh" if lang.startswith("zh") else "en"
    rows, y = [], []
    for c in calls:
        rows += dialogue_rows([(t.role, t.text) for t in c.turns], dialogue=c.call_id)
        y += c.metadata["reference"]["acts"]
    # The key covers the data, the settings and the acts code itself: a changed model class never reads an old fit.
    code = hashlib.sha256(Path(sys.modules[ActClassifier.__module__].__file__).read_bytes()).hexdigest()
    key = hashlib.sha256(json.dumps([lang, code, ACTS_PARAMS, [r[:2] for r in rows], y], ensure_ascii=False, sort_keys=True).encode()).hexdigest()
    path = CACHE_DIR / f"acts-{lang}-{key[:20]}.skops" if CACHE_DIR else None
    if path is not None and path.is_file():
        try:
            return load_model(path)[0]
        except (ValueError, OSError):
            pass  # an unreadable cache entry is refitted
    model = ActClassifier(lang=lang, **ACTS_PARAMS).fit(as_table(rows), np.asarray(y, dtype=object))
    if path is not None:
        try:
            save_model(model, path)
        except OSError:
            pass
    return model


def tag_dialogues(model, dialogues: Sequence[Sequence[tuple[str, str]]]) -> list[list[TurnTags]]:
    """Acts for each dialogue given as (role, text) pairs, as the tagging component sets them."""
    from .tagging.acts import as_table, decide, dialogue_rows

    rows = []
    for d, turns in enumerate(dialogues):
        rows += dialogue_rows(list(turns), dialogue=d)
    if not rows:
        return [[] for _ in dialogues]
    proba = model.predict_proba(as_table(rows))
    acts = decide(proba, model.classes_, model.class_factors_)
    classes = list(model.classes_)
    tags = [TurnTags(act=str(a), act_confidence=float(p[classes.index(a)])) for a, p in zip(acts, proba)]
    out, i = [], 0
    for turns in dialogues:
        out.append(tags[i:i + len(turns)])
        i += len(turns)
    return out


def tag_calls(model, calls: Sequence[Call]) -> list[list[TurnTags]]:
    return tag_dialogues(model, [[(t.role, t.text) for t in c.turns] for c in calls])


def out_of_fold_tags(calls: Sequence[Call], lang: str, folds: int = OOF_FOLDS) -> list[list[TurnTags]]:
    """Tags for the training dialogues from models that did not see them (for fitting weights)."""
    tags: list[list[TurnTags] | None] = [None] * len(calls)
    order = list(range(len(calls)))
    random.Random(SPLIT_SEED).shuffle(order)
    for k in range(folds):
        held = set(order[k::folds])
        model = fit_acts([c for i, c in enumerate(calls) if i not in held], lang)
        idx = sorted(held)
        for i, t in zip(idx, tag_calls(model, [calls[i] for i in idx])):
            tags[i] = t
    return tags  # type: ignore[return-value]


# --- scores -------------------------------------------------------------------------------------------

def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    value = spearmanr(a, b)[0]
    return float(value) if np.isfinite(value) else 0.0


def component_matrix(calls: Sequence[Call], tags: Sequence[Sequence[TurnTags]], cfg: Config) -> tuple[list[dict], np.ndarray]:
    from .scoring import analyze_call

    analyses = [analyze_call(c, t, cfg.scoring) for c, t in zip(calls, tags)]
    X = np.array([[a.score_breakdown.get(k) if a.score_breakdown.get(k) is not None else np.nan for k in TEXT_COMPONENTS]
                  for a in analyses], dtype=float)
    return [a.score_breakdown for a in analyses], X


def weighted_scores(X: np.ndarray, weights: dict[str, float]) -> np.ndarray:
    """The efficiency score for each row: 100 x the weighted mean of its measured components."""
    w = np.array([weights.get(k, 0.0) for k in TEXT_COMPONENTS])
    present = ~np.isnan(X)
    num = np.where(present, X, 0.0) @ w
    den = present.astype(float) @ w
    return np.where(den > 0, 100.0 * num / np.where(den > 0, den, 1.0), 0.0)


def fit_weights(X: np.ndarray, target: np.ndarray, rounds: int = 4) -> dict[str, float]:
    """Weights (summing to 1) that maximise the Spearman correlation with ``target``.

    Coordinate ascent over a small grid, starting from the single best component: the
    result stays a short list of round weights a reviewer can read.
    """
    usable = [j for j in range(X.shape[1]) if np.nanstd(X[:, j]) > 0]
    w = np.zeros(X.shape[1])
    if not usable:
        return {}
    start = max(usable, key=lambda j: spearman(np.nan_to_num(X[:, j]), target))
    w[start] = 1.0

    def corr(weights: np.ndarray) -> float:
        return spearman(weighted_scores(X, dict(zip(TEXT_COMPONENTS, weights))), target)

    best = corr(w)
    for _ in range(rounds):
        improved = False
        for j in usable:
            for value in WEIGHT_GRID:
                trial = w.copy()
                trial[j] = value
                if trial.sum() <= 0:
                    continue
                score = corr(trial)
                if score > best + 1e-4:
                    best, w, improved = score, trial, True
        if not improved:
            break
    w = w / w.sum()
    return {k: round(float(v), 3) for k, v in zip(TEXT_COMPONENTS, w) if v > 0}


def quality(calls: Sequence[Call], key: str) -> np.ndarray:
    return np.array([c.metadata["reference"]["quality"][key] for c in calls], dtype=float)


def evaluate_scores(data=None, lang: str = "en", train=None, test=None, cfg: Config | None = None, calibrate: bool = True,
                    out: TextIO | None = sys.stdout) -> dict:
    """Spearman between the efficiency score and the annotators' mean E, A, S on held-out dialogues."""
    cfg = cfg or Config()
    train_calls, test_calls, source = load_split(data, lang, train, test)
    model = fit_acts(train_calls, lang)
    _, X_test = component_matrix(test_calls, tag_calls(model, test_calls), cfg)
    weights = {k: w for k, w in cfg.scoring.weights.items() if k in TEXT_COMPONENTS}
    configured = dict(weights)
    if calibrate:
        _, X_train = component_matrix(train_calls, out_of_fold_tags(train_calls, lang), cfg)
        weights = fit_weights(X_train, quality(train_calls, "E"))
    scores = weighted_scores(X_test, weights)
    metrics = {f"spearman_{k}": round(spearman(scores, quality(test_calls, k)), 4) for k in ("E", "A", "S")}
    plain = weighted_scores(X_test, configured)
    metrics.update({
        "lang": lang, "train_dialogues": len(train_calls), "test_dialogues": len(test_calls), "weights": weights,
        "calibrated": calibrate, "configured_weights_spearman_E": round(spearman(plain, quality(test_calls, "E")), 4),
        "components_spearman_E": {k: round(spearman(np.nan_to_num(X_test[:, j]), quality(test_calls, "E")), 4)
                                  for j, k in enumerate(TEXT_COMPONENTS) if np.nanstd(X_test[:, j]) > 0},
    })
    if out is not None:
        print(f"scores ({lang}): {source}", file=out)
        print(f"train {len(train_calls)} / test {len(test_calls)} dialogues; acts tagged by a model fitted on the train dialogues", file=out)
        print("weights " + ("fitted on the train dialogues (out-of-fold tags)" if calibrate else "from the config") + ": "
              + ", ".join(f"{k}={v:g}" for k, v in weights.items()), file=out)
        print(f"{'annotators mean':<18} {'Spearman':>9}", file=out)
        for k, name in (("E", "effectiveness E"), ("A", "accomplishment A"), ("S", "satisfaction S")):
            print(f"{name:<18} {metrics[f'spearman_{k}']:>9.3f}", file=out)
        print(f"{'(config weights E)':<18} {metrics['configured_weights_spearman_E']:>9.3f}", file=out)
    return metrics


# --- suggestions ----------------------------------------------------------------------------------

def _similarity_model(texts: Sequence[str], lang: str):
    from sklearn.feature_extraction.text import TfidfVectorizer

    if lang.startswith("zh"):
        vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True)
    else:
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    return vec.fit(list(texts) or [""])


def _cosine(vec, a: str, bs: Sequence[str]) -> list[float]:
    if not bs:
        return []
    m = vec.transform([a, *bs])
    return list((m[1:] @ m[0].T).toarray().ravel())


def evaluate_suggest(data=None, lang: str = "en", train=None, test=None, cfg: Config | None = None, k: int = 3,
                     out: TextIO | None = sys.stdout, seed: int = SPLIT_SEED) -> dict:
    """Next helpdesk act hits@1/@3 and response similarity on held-out dialogues.

    The index is built from the training dialogues with the annotators' acts (historic
    calls, outcome known). Each held-out conversation is cut before every helpdesk reply to
    a customer turn; the part so far is tagged by an acts model fitted on the training
    dialogues, and the suggestions are compared with what the helpdesk really did next
    (the annotators' act, the real text). Acts are ranked as ``suggest`` shows them
    (P(act | context) x resolution rate); ``likelihood_hits_*`` rank by P(act | context)
    alone. Similarity: TF-IDF cosine (word uni+bigrams; for Chinese characters and
    character pairs), fitted on the training responses, the same for the suggested and
    the random responses. The suggest settings were chosen on a dialogue-level split of
    the training dialogues (``split_calls(train, seed=1)``), not on the held-out ones.
    """
    from .scoring import call_intent, issue_state
    from .sequences import call_events
    from .suggest import SuggestIndex, moments, suggest

    cfg = cfg or Config()
    train_calls, test_calls, source = load_split(data, lang, train, test)
    index = SuggestIndex(cfg.suggest)
    by_intent: dict[str | None, list[str]] = {}
    agent_acts: Counter[str] = Counter()
    for c in train_calls:
        tags = reference_tags(c)
        labels = [e.label for e in call_events(c.turns, tags)]
        roles, texts = [t.role for t in c.turns], [t.text for t in c.turns]
        for m in moments(c.call_id, labels, roles, [t.act for t in tags], texts, issue_state(tags) == "resolved", cfg.suggest.context):
            index.add(m)
            agent_acts[m.act] += 1
            by_intent.setdefault(call_intent(c.turns, tags), []).append(m.response)
    baseline_order = [a for a, _ in agent_acts.most_common()]
    model = fit_acts(train_calls, lang)
    cases = []  # (call, position of the agent reply)
    for c in test_calls:
        for j in range(1, len(c.turns)):
            if c.turns[j].role == AGENT and c.turns[j - 1].role == CUSTOMER:
                cases.append((c, j))
    prefix_tags = tag_dialogues(model, [[(t.role, t.text) for t in c.turns[:j]] for c, j in cases])
    vec = _similarity_model([m for rs in by_intent.values() for m in rs], lang)
    rng = random.Random(seed)
    hits1 = hits3 = base1 = base3 = lik1 = lik3 = 0
    sims, base_sims = [], []
    for (c, j), tags in zip(cases, prefix_tags):
        truth = c.metadata["reference"]["acts"][j]
        labels = [e.label for e in call_events(c.turns[:j], tags)]
        result = suggest(index, labels, c.turns[j - 1].text, k, cfg.suggest)
        ranked = [a["act"] for a in result["acts"]]  # as shown: P(act | context) x resolution rate
        likely = [a["act"] for a in sorted(result["acts"], key=lambda a: -a["probability"])]
        hits1 += ranked[:1] == [truth]
        hits3 += truth in ranked[:3]
        lik1 += likely[:1] == [truth]
        lik3 += truth in likely[:3]
        base1 += baseline_order[:1] == [truth]
        base3 += truth in baseline_order[:3]
        real = c.turns[j].text
        suggested = [r["text"] for r in result["responses"][:3]]
        sims.append(max(_cosine(vec, real, suggested), default=0.0))
        pool = by_intent.get(call_intent(c.turns[:j], tags)) or [r for rs in by_intent.values() for r in rs]
        base_sims.append(max(_cosine(vec, real, rng.sample(pool, min(3, len(pool)))), default=0.0))
    n = len(cases) or 1
    metrics = {
        "hits_at_1": round(hits1 / n, 4), "hits_at_3": round(hits3 / n, 4),
        "baseline_hits_at_1": round(base1 / n, 4), "baseline_hits_at_3": round(base3 / n, 4),
        "likelihood_hits_at_1": round(lik1 / n, 4), "likelihood_hits_at_3": round(lik3 / n, 4),
        "response_similarity": round(float(np.mean(sims)) if sims else 0.0, 4),
        "baseline_response_similarity": round(float(np.mean(base_sims)) if base_sims else 0.0, 4),
        "lang": lang, "train_dialogues": len(train_calls), "test_dialogues": len(test_calls), "cases": len(cases),
        "agent_act_distribution": dict(agent_acts),
    }
    if out is not None:
        print(f"suggest ({lang}): {source}", file=out)
        print(f"index from {len(train_calls)} train dialogues; {len(cases)} helpdesk replies in {len(test_calls)} held-out dialogues", file=out)
        print(f"{'':<34} {'callpipe':>9} {'baseline':>9}", file=out)
        print(f"{'next act hits@1':<34} {metrics['hits_at_1']:>9.3f} {metrics['baseline_hits_at_1']:>9.3f}", file=out)
        print(f"{'next act hits@3':<34} {metrics['hits_at_3']:>9.3f} {metrics['baseline_hits_at_3']:>9.3f}", file=out)
        print(f"{'  (by P(act | context) alone) @1':<34} {metrics['likelihood_hits_at_1']:>9.3f} {metrics['baseline_hits_at_1']:>9.3f}", file=out)
        print(f"{'best-of-3 response similarity':<34} {metrics['response_similarity']:>9.3f} {metrics['baseline_response_similarity']:>9.3f}", file=out)
        print("baseline: most frequent helpdesk act; 3 random historic responses to the same intent", file=out)
    return metrics
