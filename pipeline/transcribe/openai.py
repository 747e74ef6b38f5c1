"""Whisper on torch through openai-whisper: float16 on CUDA, float32 on CPU.

It runs offline on the embedded model: the CTranslate2 weights are converted once into
an openai-whisper checkpoint (see ``convert.py``); the tokenizer is openai-whisper's
own bundled tiktoken file. Speech regions come from the same VAD as the ctranslate2
backend. With ``asr.batched`` (the default) the very same 30 s speech pieces are
decoded, each on its own and without timestamp tokens, as the batched ctranslate2
backend does (openai-whisper has no batch API, so one piece after another); otherwise
the speech is glued together and decoded window after window with temperature
fallback, as the ``whisper`` command does. Times are mapped back to the channel's clock.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..config import AsrConfig
from ..records import Segment, Transcript, Word
from .base import EnginePlan, TranscriptionError, fixed_language
from .ctranslate2 import guard_settings, temperatures
from .guards import apply_guards
from .models import cache_dir, resolve_openai_checkpoint
from .vad import CHUNK_SECONDS, TimeMap, chunks_for, first_speech, fixed_regions, speech_regions


def load_checkpoint(path: str, device: str):
    """A Whisper model from a checkpoint file, every key matched, alignment heads set when given."""
    import torch
    import whisper

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        dims = whisper.model.ModelDimensions(**checkpoint["dims"])
        model = whisper.model.Whisper(dims)
        model.load_state_dict(checkpoint["model_state_dict"], strict=True)
    except (OSError, KeyError, RuntimeError, TypeError) as exc:
        raise TranscriptionError(f"{path}: not a usable openai-whisper checkpoint ({str(exc).splitlines()[0]})") from None
    heads = checkpoint.get("alignment_heads")
    if heads:
        mask = torch.zeros(dims.n_text_layer, dims.n_text_head, dtype=torch.bool)
        for layer, head in heads:
            mask[layer, head] = True
        model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
    return model.to(device).eval()


class OpenAIWhisperTranscriber:
    name = "openai"

    def __init__(self, cfg: AsrConfig, plan: EnginePlan):
        try:
            import torch
            import whisper
        except ImportError:
            raise TranscriptionError("the openai backend needs openai-whisper and torch (pip install openai-whisper torch)") from None
        self.cfg = cfg
        self.plan = plan
        self.device = plan.device
        self.compute_type = plan.compute_type
        if cfg.cpu_threads > 0:
            torch.set_num_threads(cfg.cpu_threads)
        source, self.model_version = resolve_openai_checkpoint(cfg.model, cache_dir(cfg.cache_dir))
        if source.endswith(".pt"):
            self.model = load_checkpoint(source, plan.device)
        else:
            try:  # an openai-whisper model name: the library downloads it
                self.model = whisper.load_model(source, device=plan.device)
            except Exception as exc:
                raise TranscriptionError(f"cannot load openai-whisper model {cfg.model!r}: {str(exc).splitlines()[0]}") from None
        self.multilingual = bool(self.model.is_multilingual)
        self.guards = guard_settings(cfg)

    def transcribe(self, audio: np.ndarray, channel: int = 0) -> Transcript:
        return self.transcribe_channels([(audio, channel)])[0]

    def transcribe_channels(self, channels: Sequence[tuple[np.ndarray, int]], language: str | None = None) -> list[Transcript]:
        fixed = fixed_language(language, self.cfg.language, self.multilingual, self.cfg.model)
        if self.plan.batched:
            return self._pieces(channels, fixed)
        prepared = []
        for audio, channel in channels:
            regions = speech_regions(audio, batched=False) if self.cfg.vad_filter else []
            speech = np.concatenate([audio[r["start"] : r["end"]] for r in regions]) if regions else (audio if not self.cfg.vad_filter else audio[:0])
            prepared.append((speech.astype(np.float32, copy=False), channel, TimeMap(regions)))
        language, probability = (fixed, 1.0) if fixed else self.detect_language(channels)
        return [self._decode(speech, channel, tmap, language, probability) for speech, channel, tmap in prepared]

    def detect_language(self, channels: Sequence[tuple[np.ndarray, int]]) -> tuple[str, float]:
        """The call's language and its probability, from the opening speech of its channels."""
        if not self.multilingual:
            return "en", 1.0
        speech = first_speech(channels, self.cfg.vad_filter)
        if not speech.size:
            return "en", 0.0
        import whisper

        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(speech), self.model.dims.n_mels).to(self.model.device)
        _tokens, probs = self.model.detect_language(mel)
        code = max(probs, key=probs.get)
        return code, float(probs[code])

    def _pieces(self, channels: Sequence[tuple[np.ndarray, int]], fixed: str | None) -> list[Transcript]:
        chunks_of, maps = {}, {}
        for audio, channel in channels:
            regions = speech_regions(audio, batched=True) if self.cfg.vad_filter else fixed_regions(audio.shape[0])
            maps[channel] = TimeMap(regions)
            chunks_of[channel] = chunks_for(audio, regions, channel, CHUNK_SECONDS)
        language, probability = (fixed, 1.0) if fixed else self.detect_language(channels)
        out = []
        for _audio, channel in channels:
            segments = []
            for chunk in chunks_of[channel]:
                result = self._run(chunk.audio, language, temperature=(0.0,), without_timestamps=True, condition_on_previous_text=False)
                segments += self._records(result, channel, maps[channel], shift=chunk.offset)
            out.append(Transcript(segments=apply_guards(sorted(segments, key=lambda s: s.start), self.guards), language=language, language_probability=probability))
        return out

    def _run(self, audio: np.ndarray, language: str, **options) -> dict:
        import whisper

        cfg = self.cfg
        return whisper.transcribe(
            self.model,
            audio,
            verbose=None,
            language=language,
            task="transcribe",
            beam_size=cfg.beam_size if cfg.beam_size > 1 else None,
            best_of=5,
            compression_ratio_threshold=cfg.compression_ratio_threshold,
            logprob_threshold=cfg.log_prob_threshold,
            no_speech_threshold=cfg.no_speech_threshold,
            word_timestamps=True,
            fp16=self.compute_type == "float16",
            **options,
        )

    def _records(self, result: dict, channel: int, tmap: TimeMap, shift: float = 0.0) -> list[Segment]:
        segments = []
        for seg in result["segments"]:
            text = seg["text"].strip()
            if not text:
                continue
            words = []
            for w in seg.get("words") or ():
                word = w["word"].strip()
                if word:
                    start, end = tmap.word_times(float(w["start"]) + shift, float(w["end"]) + shift)
                    words.append(Word(round(start, 3), round(end, 3), word, float(w["probability"])))
            start, end = (words[0].start, words[-1].end) if words else tmap.span(float(seg["start"]) + shift, float(seg["end"]) + shift)
            segments.append(
                Segment(
                    channel=channel,
                    start=start,
                    end=end,
                    text=text,
                    words=tuple(words),
                    avg_logprob=float(seg["avg_logprob"]),
                    no_speech_prob=float(seg["no_speech_prob"]),
                )
            )
        return segments

    def _decode(self, speech: np.ndarray, channel: int, tmap: TimeMap, language: str, probability: float) -> Transcript:
        if not speech.size:
            return Transcript(segments=(), language=language, language_probability=probability)
        cfg = self.cfg
        result = self._run(speech, language, temperature=temperatures(cfg), condition_on_previous_text=cfg.condition_on_previous_text)
        segments = self._records(result, channel, tmap)
        return Transcript(segments=apply_guards(segments, self.guards), language=language, language_probability=probability)
