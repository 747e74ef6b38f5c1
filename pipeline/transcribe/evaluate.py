"""``callpipe evaluate asr``: word and character error rates against human references.

Only human references count (see each data folder's SOURCES.md): jfk (known speech
text), LibriSpeech and AISHELL (corpus labels), and the four AMI per-speaker tracks
with their per-speaker transcripts. The AMI transcripts are not mapped to tracks by
the source, so they are scored as cpWER: the track-to-transcript assignment with the
fewest errors (the metric the source itself uses). English is scored as WER after
Whisper's English text normalizer, Mandarin as CER over characters without
punctuation or spaces.

``--agreement BACKEND`` runs a second backend on the same audio (and on both channels
of the shared stereo call) and reports word agreement = 1 - WER of one backend's
words against the other's.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import re
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from ..config import AsrConfig
from .chinese import to_simplified

AMI_TRACKS = ("source0", "source1", "source2", "source3")
AMI_LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class Item:
    name: str
    lang: str  # en or zh
    audio: Path
    reference: str | None  # None: no human reference (agreement only)
    channel: int = 0


def _references_tsv(path: Path) -> dict[tuple[str, str], str]:
    with open(path, encoding="utf-8", newline="") as fh:
        return {(row["file"], row["channel"]): row["text"] for row in csv.DictReader(fh, delimiter="\t")}


def _kaldi_text(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            key, _, text = line.partition(" ")
            out[key.rsplit("/", 1)[-1]] = text.strip()
    return out


def find_items(data: Path) -> tuple[list[Item], list[Item]]:
    """(single-reference items, AMI tracks) found under ``data`` (a ../shared/data-style folder)."""
    items: list[Item] = []
    fw = data / "speech_en_faster_whisper"
    if (fw / "jfk.flac").is_file() and (fw / "references.tsv").is_file():
        items.append(Item("jfk", "en", fw / "jfk.flac", _references_tsv(fw / "references.tsv")[("jfk.flac", "both")]))
    wenet = data / "speech_zh_en_wenet"
    if (wenet / "text").is_file():
        texts = _kaldi_text(wenet / "text")
        for key, text in sorted(texts.items()):
            wav = wenet / f"{key}.wav"
            if wav.is_file():
                lang = "zh" if key.startswith("aishell") else "en"
                items.append(Item(key.split("-")[0] + ":" + key.split("-", 1)[1], lang, wav, text))
    ami_items: list[Item] = []
    ami = data / "speech_en_ami_meeting"
    if (ami / "sources").is_dir():
        for track in AMI_TRACKS:
            if (ami / "sources" / f"{track}.wav").is_file():
                ami_items.append(Item(f"ami:{track}", "en", ami / "sources" / f"{track}.wav", None))
    return items, ami_items


def ami_references(data: Path) -> dict[str, str]:
    text_dir = data / "speech_en_ami_meeting" / "text"
    refs = {}
    for letter in AMI_LETTERS:
        path = text_dir / f"mixture.{letter}.words_joined.txt"
        if path.is_file():
            # AMI spells letters as "L_C_D_"; speech recognisers write "LCD".
            refs[letter] = re.sub(r"\b((?:[A-Z]_)+)", lambda m: m.group(1).replace("_", ""), path.read_text(encoding="utf-8"))
    return refs


# --- scoring ------------------------------------------------------------------------------------

def english_normalizer():
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str, lang: str, _en=[]) -> list[str]:
    """Tokens to score: normalized English words, or Chinese characters (digits and Latin words kept whole)."""
    if lang == "zh":
        text = to_simplified(unicodedata.normalize("NFKC", text))
        return re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff]|[A-Za-z]+|\d+", text.lower())
    if not _en:
        _en.append(english_normalizer())
    return _en[0](text).split()


def errors(reference: list[str], hypothesis: list[str]) -> int:
    """Word (or character) edit distance."""
    if not reference:
        return len(hypothesis)
    import jiwer

    if not hypothesis:
        return len(reference)
    out = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
    return out.substitutions + out.deletions + out.insertions


# --- running ------------------------------------------------------------------------------------

def transcribe_item(transcriber, item: Item) -> tuple[str, float, float]:
    """(text, audio seconds, wall seconds)."""
    from ..audio import decode
    from ..turns import join_text

    audio = decode(item.audio)
    samples = audio.channels[min(item.channel, audio.n_channels - 1)]
    started = time.perf_counter()
    transcript = transcriber.transcribe(samples)
    wall = time.perf_counter() - started
    text = ""
    for seg in transcript.segments:
        text = join_text(text, seg.text)
    return text, audio.duration, wall


def evaluate_asr(data: str | Path, cfg: AsrConfig, agreement_backend: str | None = None, out: TextIO | None = sys.stdout) -> dict:
    from . import load_transcriber

    data = Path(data)
    items, ami_items = find_items(data)
    if not items and not ami_items:
        raise FileNotFoundError(f"{data}: no evaluation audio found (expected speech_en_faster_whisper/, speech_zh_en_wenet/, speech_en_ami_meeting/)")
    transcriber = load_transcriber(cfg)
    multilingual = bool(getattr(transcriber, "multilingual", False))
    rows, hyps, skipped = [], {}, []
    audio_s = wall_s = 0.0
    for item in items + ami_items:
        if item.lang == "zh" and not multilingual:
            skipped.append(f"{item.name} (Mandarin; the model is English-only: use asr.model=base)")
            continue
        text, seconds, wall = transcribe_item(transcriber, item)
        hyps[item.name] = text
        audio_s += seconds
        wall_s += wall
        if item.reference is not None:
            ref, hyp = normalize(item.reference, item.lang), normalize(text, item.lang)
            rows.append({"item": item.name, "lang": item.lang, "metric": "CER" if item.lang == "zh" else "WER", "ref_tokens": len(ref), "errors": errors(ref, hyp)})
    if ami_items:
        rows.append(_ami_cpwer(data, ami_items, hyps))
    totals = {}
    for metric in ("WER", "CER"):
        sel = [r for r in rows if r["metric"] in (metric, "cpWER" if metric == "WER" else "")]
        if sel:
            totals[metric] = round(sum(r["errors"] for r in sel) / max(1, sum(r["ref_tokens"] for r in sel)), 4)
    result = {
        "backend": transcriber.name,
        "model": transcriber.model_version,
        "beam_size": cfg.beam_size,
        "batched": getattr(getattr(transcriber, "plan", None), "batched", None),
        "items": [{**r, "rate": round(r["errors"] / max(1, r["ref_tokens"]), 4)} for r in rows],
        **{f"{k.lower()}_total": v for k, v in totals.items()},
        "audio_seconds": round(audio_s, 2),
        "wall_seconds": round(wall_s, 2),
        "skipped": skipped,
    }
    if agreement_backend:
        result["agreement"] = backend_agreement(data, cfg, agreement_backend, items + ami_items, hyps, transcriber)
    if out is not None:
        print(format_table(result), file=out)
    return result


def _ami_cpwer(data: Path, ami_items: list[Item], hyps: dict[str, str]) -> dict:
    refs = ami_references(data)
    letters = sorted(refs)
    tracks = [i.name for i in ami_items]
    ref_tokens = {l: normalize(refs[l], "en") for l in letters}
    hyp_tokens = {t: normalize(hyps[t], "en") for t in tracks}
    cost = {(t, l): errors(ref_tokens[l], hyp_tokens[t]) for t in tracks for l in letters}
    best = min(itertools.permutations(letters, len(tracks)) if len(letters) >= len(tracks) else [], key=lambda perm: sum(cost[t, l] for t, l in zip(tracks, perm)), default=None)
    if best is None:
        return {"item": "ami (4 tracks)", "lang": "en", "metric": "cpWER", "ref_tokens": 0, "errors": 0}
    n_errors = sum(cost[t, l] for t, l in zip(tracks, best))
    # Tracks left without a transcript (none here) would count all their words as insertions.
    return {
        "item": "ami (4 tracks, cpWER)",
        "lang": "en",
        "metric": "cpWER",
        "ref_tokens": sum(len(ref_tokens[l]) for l in letters),
        "errors": n_errors,
        "mapping": {t.split(":")[1]: l for t, l in zip(tracks, best)},
    }


def backend_agreement(data: Path, cfg: AsrConfig, other: str, items: list[Item], hyps: dict[str, str], first) -> dict:
    """Word agreement of ``other`` with the first backend, same model, same audio."""
    from . import load_transcriber

    second = load_transcriber(dataclasses.replace(cfg, backend=other))
    extra = []
    call_dir = data / "calls" / "aws_lca_call40"
    for name, channel in (("Auto_Repairs_40_UTC_agent.wav", 0), ("Auto_Repairs_40_UTC_caller.wav", 0)):
        if (call_dir / name).is_file():
            extra.append(Item(f"call40:{name.split('_')[-1][:-4]}", "en", call_dir / name, None, channel))
    per_item, total_errors, total_words = [], 0, 0
    for item in items + extra:
        if item.lang != "en":
            continue
        base_text = hyps.get(item.name)
        if base_text is None:
            base_text, _s, _w = transcribe_item(first, item)
        other_text, _s, _w = transcribe_item(second, item)
        a, b = normalize(base_text, "en"), normalize(other_text, "en")
        e = errors(a, b)
        per_item.append({"item": item.name, "words": len(a), "agreement": round(1 - e / max(1, len(a)), 4)})
        total_errors += e
        total_words += len(a)
    return {"backends": [first.name, second.name], "items": per_item, "agreement": round(1 - total_errors / max(1, total_words), 4)}


def format_table(result: dict) -> str:
    lines = [f"ASR evaluation: backend {result['backend']}, model {result['model']}, beam {result['beam_size']}, batched {result['batched']}"]
    lines.append(f"{'item':<34} {'lang':<4} {'metric':<6} {'tokens':>7} {'errors':>7} {'rate':>7}")
    for r in result["items"]:
        lines.append(f"{r['item']:<34} {r['lang']:<4} {r['metric']:<6} {r['ref_tokens']:>7} {r['errors']:>7} {r['rate']:>7.3f}")
    for key in ("wer_total", "cer_total"):
        if key in result:
            lines.append(f"{key.replace('_', ' ').upper():<34} {'':<4} {'':<6} {'':>7} {'':>7} {result[key]:>7.3f}")
    lines.append(f"{result['audio_seconds']:.1f} s of audio in {result['wall_seconds']:.1f} s")
    for s in result["skipped"]:
        lines.append(f"skipped: {s}")
    if "agreement" in result:
        ag = result["agreement"]
        lines.append(f"word agreement {ag['backends'][0]} vs {ag['backends'][1]}: {ag['agreement']:.4f}")
        for r in ag["items"]:
            lines.append(f"  {r['item']:<32} {r['words']:>6} words  {r['agreement']:.4f}")
    return "\n".join(lines)


def main_json(result: dict) -> str:
    return json.dumps(result, sort_keys=True, ensure_ascii=False, default=lambda o: float(o) if isinstance(o, np.floating) else str(o))


# --- mono speaker separation ------------------------------------------------------------------

FRAME = 0.01  # scoring resolution (s)


def _frames(spans, n: int) -> np.ndarray:
    mask = np.zeros(n, bool)
    for start, end in spans:
        mask[int(round(start / FRAME)) : int(round(end / FRAME))] = True
    return mask


def role_attribution(ref_words: list[tuple[float, float, str]], hyp_turns, duration: float) -> dict:
    """Share of reference speech time (reference words) covered by a hypothesis turn of the right role.

    Speech the mono path left out counts as wrong; where both parties speak at once,
    either role is right.
    """
    n = int(duration / FRAME) + 1
    ref = {role: _frames([(s, e) for s, e, r in ref_words if r == role], n) for role in ("agent", "customer")}
    hyp = {role: _frames([(t.start, t.end) for t in hyp_turns if t.role == role], n) for role in ("agent", "customer", "unknown")}
    speech = ref["agent"] | ref["customer"]
    covered = speech & (hyp["agent"] | hyp["customer"] | hyp["unknown"])
    right = (ref["agent"] & hyp["agent"] & ~hyp["customer"] & ~hyp["unknown"]) | (ref["customer"] & hyp["customer"] & ~hyp["agent"] & ~hyp["unknown"])
    both = ref["agent"] & ref["customer"] & (hyp["agent"] | hyp["customer"])
    right |= both
    return {
        "speech_seconds": round(speech.sum() * FRAME, 2),
        "covered": round(float(covered.sum() / max(1, speech.sum())), 4),
        "right_role": round(float(right.sum() / max(1, speech.sum())), 4),
        "right_role_where_covered": round(float(right.sum() / max(1, covered.sum())), 4),
    }


def read_rttm(path: Path) -> list[tuple[float, float, str]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        f = line.split()
        if len(f) >= 8 and f[0] == "SPEAKER":
            start, dur = float(f[3]), float(f[4])
            out.append((start, start + dur, f[7]))
    return out


def speaker_error(ref: list[tuple[float, float, str]], hyp: list[tuple[float, float, str]], duration: float, collar: float = 0.25) -> dict:
    """Diarization error rate (missed + false alarm + confusion) / reference speaker time, optimal 1:1 mapping.

    Frames within ``collar`` seconds of a reference boundary are not scored (the usual
    allowance for where exactly a turn starts); overlapping speech is scored.
    """
    from scipy.optimize import linear_sum_assignment

    n = int(duration / FRAME) + 1
    ref_ids = sorted({s for *_t, s in ref})
    hyp_ids = sorted({s for *_t, s in hyp})
    R = np.array([_frames([(a, b) for a, b, s in ref if s == spk], n) for spk in ref_ids])
    H = np.array([_frames([(a, b) for a, b, s in hyp if s == spk], n) for spk in hyp_ids]) if hyp_ids else np.zeros((0, n), bool)
    scored = np.ones(n, bool)
    for a, b, _s in ref:
        for edge in (a, b):
            scored[max(0, int((edge - collar) / FRAME)) : int((edge + collar) / FRAME)] = False
    R, H = R[:, scored], H[:, scored]
    overlap = (R[:, None, :] & H[None, :, :]).sum(axis=2) if len(hyp_ids) else np.zeros((len(ref_ids), 0))
    rows, cols = linear_sum_assignment(-overlap) if overlap.size else ([], [])
    mapping = {hyp_ids[c]: ref_ids[r] for r, c in zip(rows, cols)}
    n_ref = R.sum(axis=0)
    n_hyp = H.sum(axis=0) if len(hyp_ids) else np.zeros_like(n_ref)
    n_correct = sum((R[ref_ids.index(mapping[h])] & H[hyp_ids.index(h)]) for h in mapping) if mapping else np.zeros_like(n_ref)
    total = n_ref.sum()
    missed = np.maximum(n_ref - n_hyp, 0).sum()
    false_alarm = np.maximum(n_hyp - n_ref, 0).sum()
    confusion = (np.minimum(n_ref, n_hyp) - n_correct).sum()
    talk = {spk: round(float(R[i].sum() * FRAME), 2) for i, spk in enumerate(ref_ids)}
    hyp_talk = {mapping.get(h, f"unmapped:{h}"): round(float(H[j].sum() * FRAME), 2) for j, h in enumerate(hyp_ids)}
    return {
        "der": round(float((missed + false_alarm + confusion) / max(1, total)), 4),
        "missed": round(float(missed / max(1, total)), 4),
        "false_alarm": round(float(false_alarm / max(1, total)), 4),
        "confusion": round(float(confusion / max(1, total)), 4),
        "collar": collar,
        "reference_talk_seconds": talk,
        "hypothesis_talk_seconds": hyp_talk,
    }


def evaluate_diarize(data: str | Path, cfg, out: TextIO | None = sys.stdout) -> dict:
    """Roles on the shared stereo call mixed down to mono, and speaker timing on the AMI excerpt."""
    from ..audio import decode
    from ..records import AGENT, CUSTOMER, UNKNOWN
    from ..turns import build_turns
    from . import load_transcriber
    from .call import transcribe_call

    data = Path(data)
    transcriber = load_transcriber(cfg.asr)
    result: dict = {"backend": transcriber.name, "model": transcriber.model_version, "diarize": dataclasses.asdict(cfg.diarize)}
    call_dir = data / "calls" / "aws_lca_call40"
    agent_wav, caller_wav = call_dir / "Auto_Repairs_40_UTC_agent.wav", call_dir / "Auto_Repairs_40_UTC_caller.wav"
    if agent_wav.is_file() and caller_wav.is_file():
        agent, caller = decode(agent_wav).channels[0], decode(caller_wav).channels[0]
        n = min(len(agent), len(caller))
        agent, caller = agent[:n], caller[:n]
        # The channel truth: each party alone on its own channel (the stereo path, echo removal included).
        ref = transcribe_call(transcriber, [(agent, 0, AGENT), (caller, 1, CUSTOMER)], cfg, 0)
        ref_words = [(w.start, w.end, ref.roles[s.channel]) for s in ref.segments for w in s.words]
        # Mixed down like `ffmpeg -ac 1`: the mean of the two channels.
        mono = ((agent + caller) * 0.5).astype(np.float32)
        hyp = transcribe_call(transcriber, [(mono, 0, UNKNOWN)], cfg, 0)
        hyp_turns = build_turns(hyp.segments, hyp.roles, cfg.turns.split_pause, cfg.turns.max_pause)
        result["stereo_call_mixed_to_mono"] = {
            **role_attribution(ref_words, hyp_turns, n / 16000),
            "separation": hyp.metadata.get("diarization"),
        }
    ami = data / "speech_en_ami_meeting"
    if (ami / "mixture.wav").is_file() and (ami / "mixture.rttm").is_file():
        from ..diarize import separate_roles

        ref_segments = read_rttm(ami / "mixture.rttm")
        k = len({s for *_t, s in ref_segments})
        audio = decode(ami / "mixture.wav").channels[0]
        transcript = transcriber.transcribe(audio)
        sep = separate_roles(audio, transcript.segments, transcript.language, dataclasses.replace(cfg.diarize, speakers=k), 0)
        # Speaker turns as the product builds them (words joined across short pauses).
        turns = build_turns(sep.segments, {ch: f"speaker{ch}" for ch in range(k)}, cfg.turns.split_pause, cfg.turns.max_pause)
        hyp_segments = [(t.start, t.end, t.role) for t in turns]
        result["ami_meeting"] = {"speakers": k, **speaker_error(ref_segments, hyp_segments, len(audio) / 16000)}
        result["ami_meeting_no_collar"] = speaker_error(ref_segments, hyp_segments, len(audio) / 16000, collar=0.0)
    if len(result) == 3:
        raise FileNotFoundError(f"{data}: neither calls/aws_lca_call40/ nor speech_en_ami_meeting/ found")
    if out is not None:
        mono = result.get("stereo_call_mixed_to_mono")
        if mono:
            print(f"stereo call mixed to mono: {mono['right_role']:.1%} of {mono['speech_seconds']:.0f} s of speech attributed to the right role "
                  f"({mono['covered']:.1%} covered by a turn, {mono['right_role_where_covered']:.1%} right where covered)", file=out)
        if "ami_meeting" in result:
            a = result["ami_meeting"]
            print(f"AMI excerpt, {a['speakers']} speakers: DER {a['der']:.1%} (missed {a['missed']:.1%}, false alarm {a['false_alarm']:.1%}, "
                  f"confusion {a['confusion']:.1%}; collar {a['collar']} s); without collar DER {result['ami_meeting_no_collar']['der']:.1%}", file=out)
    return result
