"""Audio and manifests at object-store URLs: s3://, gs://, file:// or any other fsspec protocol.

fsspec and the filesystem for a protocol are optional (``pip install 'callpipe[remote]'``
brings fsspec and s3fs); local paths never come here. A URL stays a plain string from the
command line to the store, so the store records it as given. Credentials are whatever the
protocol's filesystem finds by itself (for s3:// the AWS chain: environment variables,
~/.aws, an instance or pod role); fsspec's FSSPEC_<PROTOCOL>_<OPTION> variables set any
other option, e.g. FSSPEC_S3_ENDPOINT_URL for an S3-compatible store.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path, PurePath, PurePosixPath

from .audio import AudioError

INSTALL_HINT = "pip install 'callpipe[remote]'"
# protocol://..., or a chain of them as fsspec writes it (simplecache::s3://...).
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*(::[A-Za-z][A-Za-z0-9+.\-]*)*://")


class RemoteError(AudioError):
    """A URL that cannot be listed or read; ``reason`` is the problem without the URL."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"{url}: {reason}")
        self.url, self.reason = url, reason


def is_url(path) -> bool:
    # A pathlib.Path never holds "://" (it folds "//"), so only strings can be URLs.
    return isinstance(path, str) and bool(_URL.match(path))


def pure(path) -> PurePath:
    """The path a name, stem and suffix are taken from: a URL's part after ``://``, or the local path."""
    return PurePosixPath(path.split("://", 1)[1]) if is_url(path) else Path(path)


def parent(url: str) -> str:
    """The "folder" a URL is in, for resolving relative audio_path values of a manifest there."""
    return url.rstrip("/").rsplit("/", 1)[0]


def join(base: str, relative: str) -> str:
    return f"{base.rstrip('/')}/{relative.lstrip('/')}"


def describe(exc: BaseException) -> str:
    """One line for what went wrong reading a URL, whichever filesystem raised it."""
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    if isinstance(exc, FileNotFoundError):
        return "not found"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not an audio file"
    if "Credentials" in name:  # botocore's NoCredentialsError, PartialCredentialsError
        return f"no credentials for this store ({text or name}); see the README on object-store URLs"
    if isinstance(exc, PermissionError):
        return f"permission denied ({text})" if text else "permission denied"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{text} ({name})" if text else name


def filesystem(url: str):
    """(fsspec filesystem, path within it) for ``url``; RemoteError when that protocol cannot be used here."""
    try:
        import fsspec.core
    except ImportError:
        raise RemoteError(url, f"reading URLs needs the optional filesystem extra: {INSTALL_HINT}") from None
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:  # a protocol fsspec knows whose package is not installed
        raise RemoteError(url, f"{' '.join(str(exc).split())} ({INSTALL_HINT} brings s3://; "
                               "other protocols need their own fsspec package)") from None
    except ValueError as exc:
        raise RemoteError(url, f"{' '.join(str(exc).split())}; no fsspec filesystem reads this URL") from None
    except Exception as exc:  # options the filesystem rejects
        raise RemoteError(url, describe(exc)) from None


def list_audio(url: str, suffixes: Sequence[str]) -> list[str] | None:
    """The audio under ``url`` when it names a folder (prefix), sorted; None when it names one object."""
    fs, path = filesystem(url)
    try:
        if fs.info(path)["type"] != "directory":
            return None
        found = fs.find(path)
    except Exception as exc:
        raise RemoteError(url, describe(exc)) from None
    base, stripped = url.rstrip("/"), path.rstrip("/")
    urls = [base + p[len(stripped):] if p.startswith(stripped) else fs.unstrip_protocol(p) for p in found]
    return sorted(u for u in urls if pure(u).suffix.lower() in suffixes and not pure(u).name.startswith("."))


def open_binary(url: str):
    """An open, seekable binary file at ``url``; reads are fetched in blocks, not the whole object."""
    fs, path = filesystem(url)
    try:
        info = fs.info(path)
        if info["type"] == "directory":
            raise IsADirectoryError(path)
        if info.get("size") == 0:
            raise RemoteError(url, "empty file (0 bytes)")
        return fs.open(path, "rb")
    except RemoteError:
        raise
    except Exception as exc:
        raise RemoteError(url, describe(exc)) from None


def open_text(url: str):
    fs, path = filesystem(url)
    try:
        return fs.open(path, "rt", encoding="utf-8", newline="")
    except Exception as exc:
        raise RemoteError(url, describe(exc)) from None


def download(url: str, dest: Path) -> None:
    """Copy the object at ``url`` to ``dest``, which appears only once complete."""
    fs, path = filesystem(url)
    partial = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        fs.get_file(path, str(partial))
        partial.replace(dest)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        raise RemoteError(url, describe(exc)) from None


def sha256(url: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    fs, path = filesystem(url)
    try:
        with fs.open(path, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    except Exception as exc:
        raise RemoteError(url, describe(exc)) from None
    return digest.hexdigest()


def readable_problem(url: str) -> str | None:
    """Why ``url`` cannot be read on this machine (no extra, no credentials, no object), or None."""
    try:
        with open_binary(url) as fh:
            fh.read(1)
    except RemoteError as exc:
        return exc.reason
    return None
