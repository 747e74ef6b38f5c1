"""Whisper on CTranslate2 through faster-whisper: int8 on CPU, float16 on CUDA.

Batched mode (the default) follows faster-whisper's ``BatchedInferencePipeline``: VAD
cuts each channel into speech pieces of at most 30 s, and each piece is decoded
independently, many at a time. Here the batches are filled across *all channels of
a call*, so a 2-channel call runs as one stream of full batches instead of two
streams with a half-empty last batch each. Sequential mode is faster-whisper's
``WhisperModel.transcribe`` (one window after another, temperature fallback).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..config import AsrConfig
from ..records import Segment, Transcript, Word
from .base import EnginePlan, TranscriptionError, fixed_language
from .guards import GuardSettings, apply_guards
from .models import cache_dir, resolve_ct2_model
from .vad import CHUNK_SECONDS, Chunk, TimeMap, chunks_for, first_speech, fixed_regions, speech_regions


# On CPU the encoder and the word-alignment pass run this many 30 s pieces at a time.
# Their attention weights grow with the batch (the encoder's self-attention alone holds
# batch x 6 heads x 1500 x 1500 floats: 432 MB for 8 pieces of tiny); two at a time keep
# an hour-long call well under 1.5 GB, and CPU matrix products are no slower for it.
CPU_GROUP = 2


def _model_class():
    """faster-whisper's WhisperModel, encoding and aligning in small groups on CPU (see CPU_GROUP)."""
    import ctranslate2
    from faster_whisper import WhisperModel

    def storage(array: np.ndarray):
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))

    class GroupedModel(WhisperModel):
        def _grouped(self, n: int) -> bool:
            return self.model.device == "cpu" and n > CPU_GROUP

        def encode(self, features: np.ndarray):
            if features.ndim != 3 or not self._grouped(features.shape[0]):
                return super().encode(features)
            parts = [np.asarray(super(GroupedModel, self).encode(features[i : i + CPU_GROUP])) for i in range(0, features.shape[0], CPU_GROUP)]
            return storage(np.concatenate(parts))

        def find_alignment(self, tokenizer, text_tokens, encoder_output, num_frames, median_filter_width=7):
            if isinstance(num_frames, int) or not self._grouped(len(text_tokens)):
                return super().find_alignment(tokenizer, text_tokens, encoder_output, num_frames, median_filter_width)
            encoded = np.asarray(encoder_output)
            out = []
            for i in range(0, len(text_tokens), CPU_GROUP):
                group = slice(i, i + CPU_GROUP)
                out += super().find_alignment(tokenizer, text_tokens[group], storage(encoded[group]), num_frames[group], median_filter_width)
            return out

    return GroupedModel


def guard_settings(cfg: AsrConfig) -> GuardSettings:
    return GuardSettings(cfg.no_speech_threshold, cfg.log_prob_threshold, cfg.compression_ratio_threshold, cfg.max_repeats)


def temperatures(cfg: AsrConfig) -> tuple[float, ...]:
    """0 first; the fallback temperatures only when enabled (sequential decoding only)."""
    if not cfg.temperature_fallback:
        return (0.0,)
    return (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class FasterWhisperTranscriber:
    name = "ctranslate2"

    def __init__(self, cfg: AsrConfig, plan: EnginePlan):
        try:
            from faster_whisper import BatchedInferencePipeline

            WhisperModel = _model_class()
        except ImportError:
            raise TranscriptionError("the ctranslate2 backend needs faster-whisper (pip install faster-whisper)") from None
        self.cfg = cfg
        self.plan = plan
        self.device = plan.device
        self.compute_type = plan.compute_type
        source = resolve_ct2_model(cfg.model, cache_dir(cfg.cache_dir))
        self.model_version = source.label
        try:
            self.model = WhisperModel(
                source.load,
                device=plan.device,
                device_index=list(plan.device_index),
                compute_type=plan.compute_type,
                cpu_threads=cfg.cpu_threads,
                # One worker per GPU, so batches sent from several threads run on all of them.
                num_workers=len(plan.device_index),
            )
        except Exception as exc:  # faster-whisper raises many types for a bad model path
            hint = " (a model name is downloaded on first use: check the network, or use a local model directory)" if source.local_dir is None else ""
            raise TranscriptionError(f"cannot load Whisper model {cfg.model!r}: {str(exc).splitlines()[0]}{hint}") from None
        self._pipelines = threading.local()
        self._pipeline_cls = BatchedInferencePipeline
        self.multilingual = bool(self.model.model.is_multilingual)
        self.guards = guard_settings(cfg)

    # --- public -------------------------------------------------------------------------------

    def transcribe(self, audio: np.ndarray, channel: int = 0) -> Transcript:
        return self.transcribe_channels([(audio, channel)])[0]

    def transcribe_channels(self, channels: Sequence[tuple[np.ndarray, int]], language: str | None = None) -> list[Transcript]:
        fixed = fixed_language(language, self.cfg.language, self.multilingual, self.cfg.model)
        if self.plan.batched:
            return self._batched(channels, fixed)
        return [self._sequential(audio, channel, fixed) for audio, channel in channels]

    def detect_language(self, channels: Sequence[tuple[np.ndarray, int]]) -> tuple[str, float]:
        """The call's language and its probability, from the opening speech of its channels."""
        if not self.multilingual:
            return "en", 1.0
        speech = first_speech(channels, self.cfg.vad_filter)
        if not speech.size:
            return "en", 0.0
        from faster_whisper.audio import pad_or_trim

        features = pad_or_trim(self.model.feature_extractor(speech)[..., :-1])[None]
        token, probability = self.model.model.detect_language(self.model.encode(features))[0][0]  # most likely first
        return token[2:-2], float(probability)

    # --- sequential ---------------------------------------------------------------------------

    def _sequential(self, audio: np.ndarray, channel: int, language: str | None) -> Transcript:
        cfg = self.cfg
        segments, info = self.model.transcribe(
            audio.astype(np.float32, copy=False),
            language=language,
            beam_size=cfg.beam_size,
            temperature=list(temperatures(cfg)),
            word_timestamps=True,
            vad_filter=cfg.vad_filter,
            no_speech_threshold=cfg.no_speech_threshold,
            log_prob_threshold=cfg.log_prob_threshold,
            compression_ratio_threshold=cfg.compression_ratio_threshold,
            condition_on_previous_text=cfg.condition_on_previous_text,
        )
        out = [_record(seg.start, seg.end, seg.text, seg.words, seg.avg_logprob, seg.no_speech_prob, channel) for seg in segments]
        return Transcript(
            segments=apply_guards([s for s in out if s is not None], self.guards),
            language=info.language,
            language_probability=float(info.language_probability),
        )

    # --- batched ------------------------------------------------------------------------------

    def _pipeline(self):
        pipe = getattr(self._pipelines, "pipe", None)
        if pipe is None:
            pipe = self._pipelines.pipe = self._pipeline_cls(self.model)
        return pipe

    def _batched(self, channels: Sequence[tuple[np.ndarray, int]], fixed: str | None) -> list[Transcript]:
        from faster_whisper.tokenizer import Tokenizer

        cfg = self.cfg
        maps: dict[int, TimeMap] = {}
        chunks: list[Chunk] = []
        for audio, channel in channels:
            regions = speech_regions(audio, batched=True) if cfg.vad_filter else fixed_regions(audio.shape[0])
            maps[channel] = TimeMap(regions)
            chunks.extend(chunks_for(audio, regions, channel, CHUNK_SECONDS))
        language, probability = (fixed, 1.0) if fixed else self.detect_language(channels)
        tokenizer = Tokenizer(self.model.hf_tokenizer, self.multilingual, task="transcribe", language=language)
        options = self._options(tokenizer)
        by_channel: dict[int, list[Segment]] = {channel: [] for _a, channel in channels}
        batches = [chunks[i : i + self.plan.batch_size] for i in range(0, len(chunks), self.plan.batch_size)]
        if len(self.plan.device_index) > 1 and len(batches) > 1:
            # One model replica per GPU: keep them all busy.
            with ThreadPoolExecutor(max_workers=len(self.plan.device_index)) as pool:
                results = list(pool.map(lambda b: self._decode_batch(b, tokenizer, options), batches))
        else:
            results = [self._decode_batch(b, tokenizer, options) for b in batches]
        for batch, outputs in zip(batches, results):
            for chunk, pieces in zip(batch, outputs):
                tmap = maps[chunk.channel]
                for piece in pieces:
                    seg = _record_mapped(piece, chunk.channel, tmap)
                    if seg is not None:
                        by_channel[chunk.channel].append(seg)
        return [
            Transcript(
                segments=apply_guards(sorted(by_channel[channel], key=lambda s: s.start), self.guards),
                language=language,
                language_probability=probability,
            )
            for _a, channel in channels
        ]

    def _decode_batch(self, batch: list[Chunk], tokenizer, options) -> list[list[dict]]:
        from faster_whisper.audio import pad_or_trim

        extractor = self.model.feature_extractor
        # Features are made per batch, not for the whole call at once: memory stays flat on long calls.
        features = np.stack([pad_or_trim(extractor(c.audio)[..., :-1]) for c in batch])
        metadata = [{"offset": c.offset, "duration": c.duration, "segments": []} for c in batch]
        pipe = self._pipeline()
        # The first-word duration heuristic looks at the previous speech end; chunks of
        # another channel (or another call) must not feed it.
        pipe.last_speech_timestamp = 0.0
        return pipe.forward(features, tokenizer, metadata, options)

    def _options(self, tokenizer):
        from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens

        cfg = self.cfg
        return TranscriptionOptions(
            beam_size=cfg.beam_size,
            best_of=5,
            patience=1,
            length_penalty=1,
            repetition_penalty=1,
            no_repeat_ngram_size=0,
            log_prob_threshold=cfg.log_prob_threshold,
            no_speech_threshold=cfg.no_speech_threshold,
            compression_ratio_threshold=cfg.compression_ratio_threshold,
            temperatures=[0.0],
            initial_prompt=None,
            prefix=None,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
            prepend_punctuations="\"'“¿([{-",
            append_punctuations="\"'.。,，!！?？:：”)]}、",
            max_new_tokens=None,
            hotwords=None,
            word_timestamps=True,
            hallucination_silence_threshold=None,
            condition_on_previous_text=False,
            clip_timestamps=[],
            prompt_reset_on_temperature=0.5,
            multilingual=False,
            without_timestamps=True,
            max_initial_timestamp=0.0,
        )



def _words(raw, shift=None) -> tuple[Word, ...]:
    out = []
    for w in raw or ():
        start, end = (float(w.start), float(w.end)) if shift is None else shift(float(w.start), float(w.end))
        text = w.word.strip() if hasattr(w, "word") else w["word"].strip()
        if text:
            out.append(Word(start, end, text, float(w.probability)))
    return tuple(out)


def _record(start, end, text, words, avg_logprob, no_speech_prob, channel) -> Segment | None:
    text = text.strip()
    if not text:
        return None
    return Segment(
        channel=channel,
        start=float(start),
        end=float(end),
        text=text,
        words=_words(words),
        avg_logprob=float(avg_logprob),
        no_speech_prob=float(no_speech_prob),
    )


class _W:
    __slots__ = ("start", "end", "word", "probability")

    def __init__(self, d: dict):
        self.start, self.end, self.word, self.probability = d["start"], d["end"], d["word"], d["probability"]


def _record_mapped(piece: dict, channel: int, tmap: TimeMap) -> Segment | None:
    """A decoded piece on the speech-only timeline, put back on the channel's clock."""
    text = piece["text"].strip()
    if not text:
        return None
    words = _words([_W(w) for w in piece.get("words") or ()], shift=tmap.word_times)
    if words:
        start, end = words[0].start, words[-1].end
    else:
        start, end = tmap.span(piece["start"], piece["end"])
    return Segment(
        channel=channel,
        start=round(start, 3),
        end=round(end, 3),
        text=text,
        words=words,
        avg_logprob=float(piece["avg_logprob"]),
        no_speech_prob=float(piece["no_speech_prob"]),
    )
