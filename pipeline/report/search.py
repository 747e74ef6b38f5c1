"""A transcript search index split into small files, so a static page can search thousands of calls.

Every word of every (shown, so redacted) turn is filed under its first two characters;
the page loads only the few files its query needs, with <script> tags, which also work
from file:// where fetch() does not. static/index.js tokenizes queries the same way.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

# Han characters are words of their own (Chinese has no spaces); other words are runs
# of letters, digits and underscores. index.js holds the same pattern.
_TOKEN = re.compile(r"[\u3400-\u9fff]|(?:(?![\u3400-\u9fff])\w)+")
KEY_CHARS = 2


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def shard_file(key: str) -> str:
    """The file a key's words are in: hex of its UTF-8 bytes (any script, any file system)."""
    return key.encode("utf-8").hex() + ".js"


class SearchIndex:
    def __init__(self) -> None:
        # shard key -> word -> row numbers of the calls that contain it, ascending
        self.shards: dict[str, dict[str, list[int]]] = defaultdict(dict)

    def add(self, row: int, texts: Iterable[str]) -> None:
        """File the words of one call; rows must be added in ascending order."""
        for text in texts:
            for word in tokens(text):
                postings = self.shards[word[:KEY_CHARS]].setdefault(word, [])
                if not postings or postings[-1] != row:
                    postings.append(row)

    def write(self, folder: Path) -> None:
        """Replace ``folder`` with one script per shard key."""
        fresh = folder.with_name(folder.name + ".new")
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        for key, words in self.shards.items():
            body = json.dumps(words, ensure_ascii=True, separators=(",", ":"), sort_keys=True)
            (fresh / shard_file(key)).write_text(
                f"(window.CALLPIPE_SEARCH = window.CALLPIPE_SEARCH || {{}})[{json.dumps(key)}] = {body};\n", encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        fresh.rename(folder)
