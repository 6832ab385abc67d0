"""The forms a user id takes on disk, and matching them without hitting longer ids.

A forgotten id must be found however it was written: raw UTF-8, UTF-16 (both byte
orders), JSON-escaped (non-ASCII as ``\\uXXXX``), URL-encoded, HTML-escaped and base64
(at each of the three alignments it can have inside a longer encoded string). In text and in
single values a form counts only when it is not part of a longer word (forgetting
``u0001`` must not find ``u00012``); in raw file bytes every occurrence counts, since
packed formats put other values right beside it.
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass
from urllib.parse import quote

WORD = rb"A-Za-z0-9"


@dataclass(frozen=True)
class Form:
    name: str
    needle: bytes
    pattern: re.Pattern[bytes]


def _bounded(needle: bytes, width: int = 1) -> re.Pattern[bytes]:
    """``needle`` not preceded or followed by a word character (of ``width`` bytes)."""
    if width == 1:
        before, after = rb"(?<![" + WORD + rb"])", rb"(?![" + WORD + rb"])"
    else:  # UTF-16: a word character is one byte and a zero byte
        before = rb"(?<!\x00[" + WORD + rb"])(?<![" + WORD + rb"]\x00)"
        after = rb"(?!\x00[" + WORD + rb"])(?![" + WORD + rb"]\x00)"
    return re.compile(before + re.escape(needle) + after)


def base64_variants(data: bytes, shortest: int = 6) -> list[bytes]:
    """The base64 text ``data`` encodes to on its own (padded), and the text it always
    encodes to at byte offsets 0, 1 and 2 of a longer encoded string (the characters that
    depend on neighbouring bytes cut off; pieces shorter than ``shortest`` characters
    would match at random in large files and are left out)."""
    out = [base64.b64encode(data)]
    for offset in range(3):
        encoded = base64.b64encode(b"\x00" * offset + data)
        start = {0: 0, 1: 2, 2: 3}[offset]
        end = ((offset + len(data)) // 3) * 4
        piece = encoded[start:end]
        if len(piece) >= shortest and piece not in out:
            out.append(piece)
    return out


def forms_of(user_id: str) -> list[Form]:
    """Every form of ``user_id`` the scanner and the rewriters look for (no duplicates)."""
    raw = user_id.encode("utf-8")
    candidates: list[tuple[str, bytes, int]] = [("utf-8", raw, 1)]
    candidates.append(("utf-16-le", user_id.encode("utf-16-le"), 2))
    candidates.append(("utf-16-be", user_id.encode("utf-16-be"), 2))
    candidates.append(("json-escaped", json.dumps(user_id)[1:-1].encode("ascii"), 1))
    candidates.append(("url-encoded", quote(user_id, safe="").encode("ascii"), 1))
    candidates.append(("url-encoded+", quote(user_id, safe="").replace("%20", "+").encode(), 1))
    candidates.append(("html-escaped", html.escape(user_id).encode("utf-8"), 1))
    candidates.append(("html-numeric", "".join(f"&#{ord(c)};" for c in user_id).encode("ascii"), 1))
    seen: set[bytes] = set()
    out = []
    for name, needle, width in candidates:
        if needle and needle not in seen:
            seen.add(needle)
            out.append(Form(name, needle, _bounded(needle, width)))
    for variant in base64_variants(raw):
        for name, needle in (
            ("base64", variant),
            ("base64-url", variant.replace(b"+", b"-").replace(b"/", b"_")),
        ):
            if needle not in seen:
                seen.add(needle)
                out.append(Form(name, needle, re.compile(re.escape(needle))))
    return out


def count_in(data: bytes, forms: list[Form], bounded: bool = True) -> dict[str, int]:
    """``{form name: occurrences}`` of every form found in ``data``. ``bounded=False`` for
    packed binary formats (a SQLite record, a Parquet page), where the bytes beside a
    value may be anything: every occurrence counts there, longer ids included."""
    found: dict[str, int] = {}
    for form in forms:
        if form.needle in data:
            n = len(form.pattern.findall(data)) if bounded else data.count(form.needle)
            if n:
                found[form.name] = found.get(form.name, 0) + n
    return found


def text_needles(user_id: str) -> set[str]:
    """The text forms of ``user_id``: raw, JSON-, URL- and HTML-escaped."""
    return {
        user_id,
        json.dumps(user_id)[1:-1],
        quote(user_id, safe=""),
        html.escape(user_id),
        "".join(f"&#{ord(c)};" for c in user_id),
    }


@dataclass(frozen=True)
class TextMatcher:
    """Finds the text forms of several ids in strings and replaces them by tombstones."""

    pattern: re.Pattern[str]
    owner: dict[str, str]  # needle -> id
    tombstones: dict[str, str]  # id -> tombstone

    @classmethod
    def of(cls, tombstones: dict[str, str]) -> TextMatcher:
        owner = {needle: uid for uid in tombstones for needle in text_needles(uid)}
        alternatives = "|".join(re.escape(n) for n in sorted(owner, key=len, reverse=True))
        pattern = re.compile(r"(?<![A-Za-z0-9])(?:" + alternatives + r")(?![A-Za-z0-9])")
        return cls(pattern, owner, dict(tombstones))

    def search(self, text: str) -> bool:
        return self.pattern.search(text) is not None

    def replace(self, text: str) -> tuple[str, int]:
        """``text`` with every form of every id replaced by the id's tombstone."""
        return self.pattern.subn(lambda m: self.tombstones[self.owner[m.group(0)]], text)
