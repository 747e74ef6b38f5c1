"""Trained models on disk: skops files under models/, loaded with an explicit list of trusted types.

skops refuses to build any type it is not told to trust, so a model file, unlike a pickle,
cannot run code on load; a file naming other types is refused with its path.
"""

from __future__ import annotations

import functools
import hashlib
import zipfile
from collections.abc import Sequence
from pathlib import Path

from .config import MODELS_DIR


def resolve(name_or_path: str | Path) -> Path:
    """A bare name means ``models/NAME.skops``; anything with a suffix or a slash is a path."""
    text = str(name_or_path)
    if "/" in text or "\\" in text or text.endswith(".skops"):
        return Path(text)
    return MODELS_DIR / f"{text}.skops"


def save(model, path: str | Path) -> Path:
    import skops.io as sio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(model, path, compression=zipfile.ZIP_DEFLATED)
    return path


@functools.lru_cache(maxsize=16)
def _read(path: Path, mtime: float, trusted: tuple[str, ...]):
    import skops.io as sio

    data = path.read_bytes()
    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(trusted))
    if untrusted:
        raise ValueError(f"{path}: refusing to load, it contains untrusted types {untrusted}")
    model = sio.loads(data, trusted=list(trusted))
    return model, f"{path.stem}@sha256:{hashlib.sha256(data).hexdigest()[:12]}"


def load(name_or_path: str | Path, trusted: Sequence[str], expected: type, what: str, rebuild: str):
    """(model, version string); loaded once per process, again if the file changes."""
    path = resolve(name_or_path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} (rebuild with `{rebuild}`)")
    model, version = _read(path, path.stat().st_mtime, tuple(trusted))
    if not isinstance(model, expected):
        raise ValueError(f"{path}: expected an {expected.__name__}, got {type(model).__name__}")
    return model, version
