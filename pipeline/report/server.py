"""`callpipe serve DIR`: the review pages over HTTP on this machine, with the calls' audio.

The pages are the static files of DIR/report/. The one thing a plain file server cannot
give is audio that was not copied into the report: /audio/<call><ext> is answered from
the file the store says the call came from. Byte ranges are honoured, since that is how
a browser seeks in audio. Nothing else outside DIR/report/ is served, and no folder is
listed.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..export import safe_name
from ..store import Store

AUDIO_TYPES = {".flac": "audio/flac", ".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
               ".opus": "audio/ogg", ".m4a": "audio/mp4", ".webm": "audio/webm"}


class AudioFiles:
    """URL name (<call><ext>) -> the call's audio file, read from the store and reread on a miss
    (a run may add calls while the server is up)."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.lock = threading.Lock()
        self.known: dict[str, Path] = {}

    def find(self, name: str) -> Path | None:
        with self.lock:
            if name not in self.known:
                with Store(self.out_dir) as store:
                    self.known = {
                        f"{safe_name(call_id)}{Path(source).suffix.lower()}": Path(source)
                        for call_id, source in store.conn.execute("SELECT call_id, source FROM calls")
                    }
            return self.known.get(name)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single-range 'bytes=' header; None for the whole file.

    Raises ValueError when the range cannot be satisfied.
    """
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if not match or match.groups() == ("", ""):
        return None  # absent or a form this server does not split (multiple ranges): send it all
    first, last = match.groups()
    if first == "":  # the last N bytes
        n = int(last)
        if n == 0:
            raise ValueError("empty suffix range")
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError("range outside the file")
    return start, end


class ReportHandler(SimpleHTTPRequestHandler):
    def __init__(self, *args, audio: AudioFiles, quiet: bool, **kwargs):
        self.audio = audio
        self.quiet = quiet
        self._remaining: int | None = None  # bytes of a ranged file still to send; None: the base class's file
        super().__init__(*args, **kwargs)

    def log_message(self, format, *args):
        if not self.quiet:
            super().log_message(format, *args)

    def list_directory(self, path):
        self.send_error(HTTPStatus.NOT_FOUND, "Not found")
        return None

    def _file(self) -> Path | None:
        """The file a GET/HEAD asks for, or None to let the base class answer (folders, 404s)."""
        url_path = unquote(urlsplit(self.path).path)
        local = Path(self.translate_path(self.path))
        if local.is_dir() and url_path.endswith("/"):
            local = local / "index.html"
        if local.is_file():
            return local
        if url_path.startswith("/audio/") and "/" not in url_path[len("/audio/"):]:
            source = self.audio.find(url_path[len("/audio/"):])
            if source is not None and source.is_file():
                return source
        return None

    def send_head(self):
        path = self._file()
        if path is None:
            return super().send_head()
        try:
            f = open(path, "rb")
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "Not found")
            return None
        size = os.fstat(f.fileno()).st_size
        try:
            span = _byte_range(self.headers.get("Range"), size)
        except ValueError:
            f.close()
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        first, last = span or (0, size - 1)
        self.send_response(HTTPStatus.PARTIAL_CONTENT if span else HTTPStatus.OK)
        if span:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Type", AUDIO_TYPES.get(path.suffix.lower()) or self.guess_type(str(path)))
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Accept-Ranges", "bytes")
        # Pages are rewritten after each run: always ask whether they changed.
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Last-Modified", self.date_time_string(int(os.fstat(f.fileno()).st_mtime)))
        self.end_headers()
        f.seek(first)
        self._remaining = last - first + 1
        return f

    def copyfile(self, source, outputfile):
        if self._remaining is None:
            return super().copyfile(source, outputfile)
        remaining = self._remaining
        while remaining > 0:
            chunk = source.read(min(256 * 1024, remaining))
            if not chunk:
                break
            outputfile.write(chunk)
            remaining -= len(chunk)


class ReportServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A player that seeks drops the request it no longer needs: not worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def make_server(out_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False) -> ReportServer:
    """An HTTP server for DIR/report/ (not started: call serve_forever)."""
    out_dir = Path(out_dir)
    handler = partial(ReportHandler, directory=str(out_dir / "report"), audio=AudioFiles(out_dir), quiet=quiet)
    return ReportServer((host, port), handler)
