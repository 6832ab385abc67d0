"""Text files and archives without the forgotten users.

* text (JSON, HTML, Markdown, CSV, YAML, logs: markers, Data Docs, validation results,
  input examples, leaderboards): every text form of the id becomes its tombstone;
* gzip and zip archives (``.keras``, ``.npz`` and ``.zip``): their members as text,
  re-packed; an archive whose member holds the id but is not text is reported (None).
"""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

from tasks.forget.forms import TextMatcher
from tasks.forget.ledger import atomic_write


def rewrite_text_bytes(data: bytes, matcher: TextMatcher) -> tuple[bytes, int] | None:
    """The text with every form replaced, or None when it is not UTF-8 text."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    new, n = matcher.replace(text)
    return new.encode("utf-8"), n


def _rewrite_member(name: str, data: bytes, matcher: TextMatcher) -> tuple[bytes, int] | None:
    if not any(needle.encode() in data for needle in matcher.owner):
        return data, 0
    if name.endswith(".gz"):
        inner = _rewrite_member(name[:-3], gzip.decompress(data), matcher)
        return None if inner is None else (gzip.compress(inner[0]), inner[1])
    return rewrite_text_bytes(data, matcher)


def rewrite_archive(path: Path, matcher: TextMatcher) -> int | None:
    """A zip (``.zip``, ``.keras``, ``.npz`` of arrays) or gzip file with every member
    rewritten as text; None when a member that holds an id is not text."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        result = _rewrite_member(path.name, data, matcher)
        if result is None:
            return None
        if result[1]:
            atomic_write(path, result[0])
        return result[1]
    total = 0
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            member = source.read(info)
            result = _rewrite_member(info.filename, member, matcher)
            if result is None:
                return None
            total += result[1]
            target.writestr(info, result[0])
    if total:
        atomic_write(path, out.getvalue())
    return total


def holds_any(path: Path, needles: list[bytes]) -> bool:
    data = path.read_bytes()
    return any(n in data for n in needles)
