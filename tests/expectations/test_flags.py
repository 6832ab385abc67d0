"""The vectorised row checks mean what the GX rules they stand for meant on pandas."""

from __future__ import annotations

import re
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from expectations.common import BLANK_REGEX, WELL_FORMED_ID_REGEX
from expectations.duplicates import _packed, duplicate_masks
from expectations.flags import (
    BLANK_RE2,
    WELL_FORMED_RE2,
    Columns,
    _matches,
    user_event_counts,
)
from expectations.outcome import check_counts


def _texts() -> list[str]:
    """Every code point of the first planes' scripts and the odd ones, alone and placed at
    the start, middle and end of an id, and before a final newline."""
    points = [
        *range(0x3100),
        0x85,
        0x2028,
        0x2029,
        0x202F,
        0x205F,
        0x3000,
        0xFEFF,
        0x10FFFF,
        0x1F600,
        0xE000,
        0xFFFD,
    ]
    out = ["", "\n", "\n\n", "a\n", "a\n\n", "a\r\n", " a", "a ", "a  b"]
    for p in points:
        c = chr(p)
        out += [c, c + c, f"a{c}", f"{c}a", f"a{c}b", f"{c}\n", f"a{c}\n", f"\n{c}"]
    return out


@pytest.mark.parametrize(
    ("python", "re2"), [(BLANK_REGEX, BLANK_RE2), (WELL_FORMED_ID_REGEX, WELL_FORMED_RE2)]
)
def test_the_id_patterns_match_as_pythons_re_does(python, re2) -> None:
    texts = _texts()
    expected = np.array([re.search(python, t) is not None for t in texts])
    found = _matches(pa.chunked_array([pa.array(texts, pa.large_string())]), re2)
    wrong = [texts[i] for i in np.flatnonzero(expected != found)]
    assert not wrong, [ascii(t) for t in wrong[:10]]


def test_the_id_shape_fast_path_agrees_with_the_patterns() -> None:
    texts = [*_texts(), None, "u123", "\u00e9t\u00e9", "\u0663\u0664", "A1b2"]
    table = pa.table({"id": pa.array(texts, pa.large_string())})
    blank, malformed = Columns(table).id_shape("id")
    for text, b, m in zip(texts, blank, malformed, strict=True):
        if text is None:
            assert not b and not m
            continue
        assert b == (re.search(BLANK_REGEX, text) is not None), ascii(text)
        assert m == (re.search(WELL_FORMED_ID_REGEX, text) is None), ascii(text)


def test_duplicates_are_pandas_duplicated_among_the_clean_rows() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    users = rng.choice(["u1", "u2", "u3", None], size=n)
    items = rng.choice(["i1", "i2", None], size=n)
    ts = pd.Series(pd.to_datetime(rng.integers(0, 4, size=n), unit="s", utc=True))
    ts[rng.random(n) < 0.1] = pd.NaT
    kinds = rng.choice(["view", None], size=n)
    frame = pd.DataFrame(
        {
            "user_id": pd.array(users, dtype="str"),
            "item_id": pd.array(items, dtype="str"),
            "timestamp": ts,
            "event_type": pd.array(kinds, dtype="str"),
        }
    )
    clean = rng.random(n) < 0.7
    key = list(frame.columns)
    repeated, dropped = duplicate_masks(Columns(pa.Table.from_pandas(frame)), key, clean)

    expected_dropped = np.zeros(n, dtype=bool)
    expected_dropped[clean] = frame[clean].duplicated(keep="first").to_numpy()
    assert (dropped == expected_dropped).all()
    every_null = frame.isna().all(axis=1).to_numpy()
    expected_repeated = frame.duplicated(keep=False).to_numpy() & ~every_null
    assert (repeated == expected_repeated).all()


def test_packing_keeps_keys_apart() -> None:
    a = np.array([0, 1, 0, 1, 5], dtype=np.int64)
    b = np.array([2, 2, 3, 3, 2], dtype=np.int64)
    big = np.array([0, sys.maxsize // 2, 0, -(sys.maxsize // 2), 0], dtype=np.int64)
    packed = _packed([a, big, b])
    rows = list(zip(*packed, strict=True))
    assert len(set(rows)) == len(set(zip(a, big, b, strict=True)))
    assert len(packed) == 2


def test_user_event_counts_count_null_ids_as_one_user() -> None:
    table = pa.table({"user_id": pa.array(["a", None, "a", None, "b"], pa.large_string())})
    counts = user_event_counts(Columns(table).codes("user_id"))
    assert counts.tolist() == [2, 2, 2, 2, 1]


def test_a_gx_count_unlike_the_flags_is_an_error() -> None:
    class Result:
        def __init__(self, column: str, count: int) -> None:
            self.expectation_config = type("Config", (), {"kwargs": {"column": column}})()
            self.result = {"unexpected_count": count}

    check_counts("t", [Result("a", 2), Result("other", 9)], {"a": 2})
    with pytest.raises(RuntimeError, match="GX counted 1 unexpected rows in 'a'"):
        check_counts("t", [Result("a", 1)], {"a": 2})
