"""A file the batch's user may not read is recorded as failed; the rest of the batch runs."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from .audio_util import write_excerpt

ROOT = Path(__file__).resolve().parent.parent
# Root reads any file; without these two capabilities it obeys file permissions like a
# nightly job's service user.
AS_UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", "--"]


def test_an_unreadable_file_fails_with_a_reason_and_the_batch_goes_on(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_excerpt(src / "readable.wav", 0, 6)
    locked = write_excerpt(src / "locked.wav", 20, 26)
    locked.chmod(0)
    command = [sys.executable, "-c", "import sys; from pipeline.cli import main; sys.exit(main(sys.argv[1:]))",
               "run", str(src), "--out", str(out), "--no-report", "--set", "asr.multilingual_model="]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv (util-linux): every file is readable")
        command = AS_UNPRIVILEGED + command
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"FAILED {locked}: cannot read (Permission denied)" in result.stdout
    db = sqlite3.connect(out / "callpipe.sqlite")
    assert [Path(s).name for (s,) in db.execute("SELECT source FROM calls")] == ["readable.wav"]
    assert [Path(s).name for (s,) in db.execute("SELECT source FROM errors")] == ["locked.wav"]
