"""Rebuild and measure the acts models from the public STC3 helpdesk dialogues.

STC3 (NTCIR-14) gives every turn a nugget label from each of 19 annotators:
CNUG0 = customer states the problem, HNUG* = helpdesk states the solution,
CNUG* = customer confirms it is solved, CNUG/HNUG = other useful turns,
CNaN/HNaN = not a nugget. We map each annotator's label to an act first and take
the act most annotators chose: "regular" and "not a nugget" both mean *no issue-state
act*, so they count together (taking the most frequent raw label instead would let a
minority act win against a split majority).

Evaluation splits dialogues, not turns, so no conversation is on both sides.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GroupShuffleSplit

from ..config import MODELS_DIR
from ..records import ACTS, AGENT, CUSTOMER
from .acts import ActClassifier, as_table, dialogue_rows, save_model

NUGGET_TO_ACT = {
    "CNUG0": "problem_stated",
    "HNUG*": "solution_offered",
    "CNUG*": "solution_confirmed",
    "CNUG": "other",
    "HNUG": "other",
    "CNaN": "other",
    "HNaN": "other",
}
SENDER_TO_ROLE = {"customer": CUSTOMER, "helpdesk": AGENT}
TRAIN_FILES = {"en": "train_data_en.json", "zh": "train_data_cn.json"}
STC3_DIRNAME = "text_stc3_helpdesk"
SPLIT_SEED = 0
TEST_SIZE = 0.2


@dataclass(frozen=True)
class Dialogue:
    id: str
    turns: tuple[tuple[str, str], ...]  # (role, text)
    acts: tuple[str, ...] | None  # None when the file has no annotations
    votes: tuple[tuple[float, ...], ...] | None = None  # per turn, the share of annotators per act (ACTS order)


# --- data -------------------------------------------------------------------------------------

def vote_shares(labels: list[str]) -> tuple[float, ...]:
    """The share of annotators that chose each act, in ``ACTS`` order."""
    counts = Counter(NUGGET_TO_ACT[label] for label in labels)
    return tuple(counts[act] / len(labels) for act in ACTS)


def majority_act(labels: list[str]) -> str:
    """The act most annotators chose; a tie goes to the act listed first in ``ACTS``."""
    counts = Counter(NUGGET_TO_ACT[label] for label in labels)
    return max(ACTS, key=lambda act: (counts[act], -ACTS.index(act)))


def load_stc3(path: str | Path) -> list[Dialogue]:
    """The dialogues of an STC3 JSON file; a file that is not one raises ValueError naming it."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable STC3 JSON file ({exc})") from None
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{path}: expected a non-empty list of STC3 dialogues")
    dialogues = []
    for n, item in enumerate(raw):
        try:
            dialogues.append(_dialogue(item))
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
            reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ValueError(f"{path}: dialogue {n}: not an STC3 dialogue ({reason})") from None
    return dialogues


def _dialogue(item: dict) -> Dialogue:
    turns = []
    for t in item["turns"]:
        if t["sender"] not in SENDER_TO_ROLE:
            raise ValueError(f"unknown sender {t['sender']!r}")
        turns.append((SENDER_TO_ROLE[t["sender"]], " ".join(u for u in t["utterances"] if u).strip()))
    turns = tuple(turns)
    acts = votes = None
    if item.get("annotations"):
        unknown = {l for a in item["annotations"] for l in a["nugget"]} - set(NUGGET_TO_ACT)
        if unknown:
            raise ValueError(f"id {item['id']}: unknown nugget label(s) {sorted(unknown)}")
        labels = [[a["nugget"][i] for a in item["annotations"]] for i in range(len(turns))]
        acts = tuple(majority_act(turn) for turn in labels)
        votes = tuple(vote_shares(turn) for turn in labels)
    return Dialogue(str(item["id"]), turns, acts, votes)


def stc3_dir(data_dir: str | Path) -> Path:
    """Accept the STC3 folder itself or a data folder that holds it."""
    data_dir = Path(data_dir)
    return data_dir / STC3_DIRNAME if (data_dir / STC3_DIRNAME).is_dir() else data_dir


def train_file(data_dir: str | Path, lang: str) -> Path:
    if lang not in TRAIN_FILES:
        raise ValueError(f"lang must be one of {sorted(TRAIN_FILES)}, got {lang!r}")
    path = stc3_dir(data_dir) / TRAIN_FILES[lang]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: STC3 training file not found")
    return path


def to_xy(dialogues: list[Dialogue]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, majority acts, annotator vote shares (n_turns, len(ACTS))) for ``ActClassifier.fit``."""
    rows, labels, votes = [], [], []
    for d in dialogues:
        if d.acts is None or d.votes is None:
            raise ValueError(f"dialogue {d.id} has no annotations (the published STC3 test files have none)")
        rows += dialogue_rows(d.turns, dialogue=d.id)
        labels += d.acts
        votes += d.votes
    return as_table(rows), np.asarray(labels, dtype=object), np.asarray(votes, dtype=float).reshape(-1, len(ACTS))


def _annotated(dialogues: list[Dialogue], source) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        return to_xy(dialogues)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def split_dialogues(dialogues: list[Dialogue], seed: int = SPLIT_SEED, test_size: float = TEST_SIZE):
    """(train, test) dialogues: a fixed-seed split by dialogue."""
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    ids = [d.id for d in dialogues]
    train_idx, test_idx = next(splitter.split(ids, groups=ids))
    return [dialogues[i] for i in train_idx], [dialogues[i] for i in test_idx]


# --- evaluation -------------------------------------------------------------------------------

def score(y_true, y_pred) -> dict:
    per_class = f1_score(y_true, y_pred, labels=list(ACTS), average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=list(ACTS), average="macro", zero_division=0)),
        "per_class": {act: float(f) for act, f in zip(ACTS, per_class)},
    }


def format_table(metrics: dict, y_true) -> str:
    support = Counter(y_true)
    lines = [f"{'act':<20} {'F1':>6} {'support':>8}"]
    lines += [f"{act:<20} {metrics['per_class'][act]:>6.3f} {support[act]:>8}" for act in ACTS]
    lines += [f"{'macro-F1':<20} {metrics['macro_f1']:>6.3f} {len(y_true):>8}", f"{'accuracy':<20} {metrics['accuracy']:>6.3f}"]
    return "\n".join(lines)


def evaluate_acts(
    data: str | Path | None = None,
    lang: str = "en",
    train: str | Path | None = None,
    test: str | Path | None = None,
    out: TextIO | None = sys.stdout,
) -> dict:
    """Train on one part, score on the other: accuracy, macro-F1 and per-class F1.

    ``data``: an STC3 folder; its training file is split by dialogue (seed ``SPLIT_SEED``).
    ``train``/``test``: STC3-format JSON files, both annotated.
    """
    if train is not None and test is not None:
        train_d, test_d = load_stc3(train), load_stc3(test)
        source = f"train={train} test={test}"
    elif data is not None:
        train_d, test_d = split_dialogues(load_stc3(train_file(data, lang)))
        source = f"{train_file(data, lang)} split by dialogue, seed {SPLIT_SEED}, {TEST_SIZE:.0%} test"
    else:
        raise ValueError("evaluate_acts: give data=DIR or both train= and test= files")
    X_train, y_train, votes_train = _annotated(train_d, train or data)
    X_test, y_test, _ = _annotated(test_d, test or data)
    model = ActClassifier(lang=lang).fit(X_train, y_train, votes=votes_train)
    metrics = score(y_test, model.predict(X_test))
    metrics.update(
        lang=lang,
        train_dialogues=len(train_d),
        test_dialogues=len(test_d),
        train_turns=int(len(y_train)),
        test_turns=int(len(y_test)),
    )
    if out is not None:
        print(f"acts ({lang}): {source}", file=out)
        print(f"train {len(train_d)} dialogues / {len(y_train)} turns; test {len(test_d)} dialogues / {len(y_test)} turns", file=out)
        print(format_table(metrics, y_test), file=out)
    return metrics


# --- training ---------------------------------------------------------------------------------

# How the estimator's settings were chosen, for the model cards.
SELECTION = (
    (
        "Settings were chosen on the training part of the split only: 5-fold cross-validation grouped by dialogue "
        "(English, macro-F1): stage2_C 0.2 0.744 (chosen) vs 1.0 0.739 and 0.05 0.740; stage-1 C 0.3 0.726, "
        "C 0.05 0.738; neighbours' word n-grams 0.739; logistic regression for stage 1 0.739; own-speaker order "
        "features 0.734; score margin to the rest of the dialogue 0.737; 10 folds for the out-of-fold scores 0.733; "
        "larger vocabularies (50k own / 10k neighbours) 0.735; stage-1 scores of three neighbours each side 0.733 "
        "(all rejected). Chinese was not tuned separately."
    ),
    (
        "Known roles restrict the acts (customer: problem_stated, solution_confirmed, other; agent: solution_offered, "
        "other) in predict and when tuning the decision factors, as the tagger does."
    ),
    (
        "The held-out split was first scored with these settings (macro-F1 0.738 English, 0.783 Chinese). Then "
        "with a class-balanced stage 2 (stage2_class_weight='balanced'), which had scored 0.752 in the same "
        "cross-validation: held-out macro-F1 0.720 English, 0.774 Chinese. It was not adopted: it did not hold up, "
        "and it makes act_confidence overstate the rare acts."
    ),
    (
        "Stage 1 then learned from the annotators' vote shares (soft_labels=True: one copy of a turn per act it got "
        "votes for, weighted by the share) instead of the majority act alone. In 5-fold cross-validation grouped by "
        "dialogue on the training part it scored macro-F1 0.745 vs 0.736 English and 0.790 vs 0.782 Chinese, so it "
        "was adopted for both languages. The held-out split, a third look, then gave 0.763 vs 0.738 English and "
        "0.748 vs 0.783 Chinese."
    ),
    (
        "With soft labels the regularisation was searched again, in the same cross-validation, for both languages "
        "(macro-F1 en / zh): C 0.1 and stage2_C 0.2 (the earlier settings) 0.745 / 0.790; C 0.05 - / 0.784; C 0.3 "
        "0.751 / 0.793; stage2_C 1.0 0.748 / 0.797; stage2_C 0.05 - / 0.776; C 1.0 with stage2_C 1.0 - / 0.797; "
        "C 0.3 with stage2_C 3.0 - / 0.802; C 0.3 with stage2_C 1.0 0.751 / 0.804 (chosen for both languages: the "
        "best mean). The held-out split, a fourth look, gave the Evaluation table. Those looks at it inform its "
        "reading, so the table is slightly optimistic; Chinese solution_confirmed has 33 held-out turns, so one "
        "split moves macro-F1 by a few hundredths."
    ),
)

def train_acts_model(data_dir: str | Path, lang: str, out: str | Path | None = None, command: str | None = None) -> Path:
    """Fit on the whole STC3 training file for ``lang``, save ``models/acts-LANG.skops`` and its card.

    The card's figures come from a separate fit on the dialogue-level split (see ``evaluate_acts``).
    """
    path = train_file(data_dir, lang)
    if command is None:
        command = f"callpipe train acts --data {data_dir} --lang {lang}" + (f" --out {out}" if out else "")
    out = Path(out) if out else MODELS_DIR / f"acts-{lang}.skops"
    dialogues = load_stc3(path)
    metrics = evaluate_acts(data=data_dir, lang=lang, out=None)
    X, y, votes = to_xy(dialogues)
    model = ActClassifier(lang=lang).fit(X, y, votes=votes)
    save_model(model, out)
    _write_card(out, model, path, dialogues, y, metrics, command)
    return out


def _write_card(model_path: Path, model: ActClassifier, data_path: Path, dialogues, y, metrics: dict, command: str) -> Path:
    lang = model.lang
    counts = Counter(y)
    digest = hashlib.sha256(data_path.read_bytes()).hexdigest()
    size_mb = model_path.stat().st_size / 1e6
    params = ", ".join(f"{k}={v!r}" for k, v in sorted(model.get_params().items()))
    factors = ", ".join(f"{c}={f:.3g}" for c, f in zip(model.classes_, model.class_factors_))
    lines = [
        f"# {model_path.stem}: per-turn issue-state acts ({'English' if lang == 'en' else 'Chinese'})",
        "",
        f"- Built: {dt.date.today().isoformat()}",
        f"- Rebuild: `{command}`",
        f"- File: `{model_path.name}` ({size_mb:.2f} MB, skops format; load with `pipeline.tagging.acts.load_model`)",
        f"- Estimator: `pipeline.tagging.acts.ActClassifier({params})`",
        f"- Decision factors (tuned for macro-F1 on out-of-fold training predictions): {factors}",
        "",
        "## Data",
        "",
        f"- `{data_path.name}` from the NTCIR-14 STC-3 helpdesk dialogues (annotations CC BY 4.0; text crawled from Weibo"
        + (", English manual translations" if lang == "en" else "") + ").",
        f"- sha256 `{digest}`; {len(dialogues)} dialogues, {len(y)} turns.",
        "- Label per turn: each of the 19 annotators' nugget labels is mapped to an act (CNUG0 -> problem_stated, "
        "HNUG* -> solution_offered, CNUG* -> solution_confirmed, CNUG/HNUG/CNaN/HNaN -> other) and the act most "
        "annotators chose is kept (ties go to the act listed first).",
        "- Turns: " + ", ".join(f"{act} {counts[act]}" for act in ACTS) + ".",
        "- Roles: STC3 sender customer -> customer, helpdesk -> agent.",
        "",
        "## Evaluation",
        "",
        f"- Split: dialogue-level, seed {SPLIT_SEED}, {TEST_SIZE:.0%} of the dialogues held out "
        f"({metrics['train_dialogues']} train / {metrics['test_dialogues']} test dialogues, {metrics['test_turns']} test turns). "
        "The shipped model is then refit on all dialogues. The published STC3 test files carry no annotations.",
        f"- Reproduce: `callpipe evaluate acts --data {data_path.parent} --lang {lang}`",
        "- Metric: macro-F1 over the four acts (the classes are very unbalanced, so accuracy says little).",
        "",
        "| act | F1 |",
        "|---|---|",
        *[f"| {act} | {metrics['per_class'][act]:.3f} |" for act in ACTS],
        f"| **macro-F1** | **{metrics['macro_f1']:.3f}** |",
        f"| accuracy | {metrics['accuracy']:.3f} |",
        "",
        "## Model selection",
        "",
        *[f"- {line}" for line in SELECTION],
        "",
        "## Limits",
        "",
        "- Trained on written Weibo helpdesk exchanges, not on call transcripts; expect lower accuracy on ASR text.",
        "- Turns whose role is `unknown` get no role features; text and position still decide.",
        "",
    ]
    card = model_path.with_suffix(".md")
    card.write_text("\n".join(lines), encoding="utf-8")
    return card


def train_all(data_dir: str | Path) -> list[Path]:
    """acts-en, acts-zh, then the default intent model (when the intents module provides a trainer)."""
    paths = [
        train_acts_model(data_dir, lang, command=f"callpipe train all --data {data_dir}") for lang in ("en", "zh")
    ]
    try:
        intents = importlib.import_module(f"{__package__}.intents")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.intents":
            raise
        return paths
    trainer = getattr(intents, "train_intent_model", None)
    if trainer is not None:
        paths.append(Path(trainer()))
    return paths
