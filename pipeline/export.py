"""Files generated from the store for people and other tools."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .store import Store


def write_call_json(store: Store, out_dir: Path, call_id: str) -> Path:
    """DIR/calls/<call_id>.json: everything stored about one call."""
    path = Path(out_dir) / "calls" / f"{call_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(store.call_record(call_id), ensure_ascii=False, indent=2), encoding="utf-8")
    # Replace atomically so a reader never sees half a file.
    os.replace(tmp, path)
    return path
