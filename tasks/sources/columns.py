"""Turn a source's raw columns into contract columns: ids, timestamps, values.

Policies (each one counted in the returned stats, never applied silently):

* ids are text, always. CSV is read as text, so "1" never becomes "1.0". Surrounding
  whitespace is stripped (" 42" -> "42"): it is a formatting artefact, never part of an
  id. A column whose every id looks like ``<int>.0`` was written from floats upstream:
  the ".0" is removed, so it joins the same ids written as integers. Parquet integer ids
  become their decimal text; a non-integral float id ("1.5") is kept as text and flagged.
* ids are Unicode NFC with the invisible characters U+200B/C/D, U+2060 and U+FEFF
  removed: "e" + combining acute and "\u00e9" are one user, "u1\u200b" is "u1" (counted).
* timestamps: epoch seconds, epoch milliseconds (|n| >= 1e11, i.e. after 1973 in ms) or
  ISO 8601 text (no zone = UTC). ``auto`` takes the form most values have; values in
  another form are not guessed at: they become NaT and the row carries an
  ``ingest_issue`` (validation quarantines it). ``mixed`` parses every value by its own
  form. ``s``/``ms``/``iso`` force one form.
* values: numbers; text that is not a number is flagged (the row is quarantined).

Rows with a problem found here get a human sentence in the ``ingest_issue`` column;
validation quarantines those rows with that sentence as the reason.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

ISSUE = "ingest_issue"
_MS_THRESHOLD = 1e11  # 1e11 s is the year 5138; 1e11 ms is 1973
_MAX_EPOCH = 1e14  # beyond this, not seconds nor milliseconds (microseconds?)
_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_FLOAT_INT = r"^[+-]?\d+\.0+$"
_INT = r"^[+-]?\d+$"
# Invisible characters that make two ids look equal and compare unequal: removed from ids.
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
_ZONE = r"[T ]\d{2}.*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"  # an ISO timestamp's zone designator
_KIND_NAMES = {"s": "epoch seconds", "ms": "epoch milliseconds", "iso": "ISO 8601 text"}


def new_issues(index: pd.Index) -> pd.Series:
    """An empty ``ingest_issue`` column for a frame with ``index``."""
    return pd.Series(None, index=index, dtype=object)


def add_issue(
    issues: pd.Series, mask: np.ndarray | pd.Series, message: str | Callable[[int], str]
) -> None:
    """Append a sentence to ``issues`` (in place) where ``mask`` is true.

    ``message`` is a string, or a function of the row position that returns one.
    """
    positions = np.flatnonzero(np.asarray(mask, dtype=bool))
    if not len(positions):
        return
    old = issues.to_numpy(dtype=object)[positions]
    new = [message if isinstance(message, str) else message(int(p)) for p in positions]
    issues.iloc[positions] = [
        n if pd.isna(o) else f"{o}; {n}" for o, n in zip(old, new, strict=False)
    ]


def normalize_ids(
    raw: pd.Series, name: str, issues: pd.Series, float_suffix: bool | None = None
) -> tuple[pd.Series, dict[str, Any]]:
    """Ids as stripped text; ``{"stripped": n, "float_suffix_removed": n, "float_vote":
    (every id integral, some id written "<int>.0"), "float_suffix": removed or not}``
    (the last two None for ids that are not text: nothing to decide).

    ``float_suffix``: remove the ".0" of text ids or not; None decides from this column
    (its vote). A file read in batches passes the whole file's decision.
    """
    stats: dict[str, Any] = {
        "stripped": 0,
        "float_suffix_removed": 0,
        "float_vote": None,
        "float_suffix": None,
    }
    if pd.api.types.is_float_dtype(raw.dtype):
        integral = raw.notna() & np.isfinite(raw) & (raw == np.round(raw))
        text = pd.Series(pd.NA, index=raw.index, dtype="str")
        text[integral] = raw[integral].astype("int64").astype(str)
        other = raw.notna() & ~integral
        text[other] = raw[other].astype(str)
        stats["float_suffix_removed"] = int(integral.sum())
        add_issue(issues, other, f"{name} is a non-integral number")
        return text, stats
    if pd.api.types.is_integer_dtype(raw.dtype) or pd.api.types.is_bool_dtype(raw.dtype):
        return raw.astype("str"), stats
    text = raw.astype("str")
    stripped = text.str.strip()
    stats["stripped"] = int(((stripped != text) & text.notna()).sum())
    present = stripped.dropna()
    floaty = present.str.fullmatch(_FLOAT_INT)
    any_floaty = bool(len(present) and floaty.any())
    all_integral = bool((floaty | present.str.fullmatch(_INT)).all())
    stats["float_vote"] = (all_integral, any_floaty)
    if float_suffix is None:
        float_suffix = all_integral and any_floaty
    stats["float_suffix"] = float_suffix
    if float_suffix:
        stats["float_suffix_removed"] = int(floaty.sum())
        stripped = stripped.str.replace(r"\.0+$", "", regex=True)
    return stripped, stats


def unify_ids(raw: pd.Series) -> tuple[pd.Series, int]:
    """Text ids in NFC without invisible characters, and how many changed; other dtypes as
    they are."""
    if not (pd.api.types.is_object_dtype(raw.dtype) or pd.api.types.is_string_dtype(raw.dtype)):
        return raw, 0
    text = raw.astype("str")
    wide = text.str.contains(r"[^\x00-\x7f]", regex=True, na=False)  # vectorised: most are ASCII
    if not wide.any():
        return text, 0
    unified = text.copy()
    unified[wide] = text[wide].map(_unify).astype("str")
    return unified, int((unified[wide] != text[wide]).sum())


def _unify(text: str) -> str:
    """``text`` in NFC with the invisible characters removed ("e\u0301" -> "\u00e9")."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFC", text.translate(_INVISIBLE_TABLE)).strip()


_INVISIBLE_TABLE = dict.fromkeys(map(ord, INVISIBLE))


def parse_values(raw: pd.Series, name: str, issues: pd.Series) -> pd.Series:
    """Float64 values; text that is not a number becomes NaN and is flagged."""
    if pd.api.types.is_bool_dtype(raw.dtype):
        return raw.astype("float64")
    if pd.api.types.is_numeric_dtype(raw.dtype):
        return raw.astype("float64")
    text = raw.astype("str").str.strip()
    values = pd.to_numeric(text, errors="coerce").astype("float64")
    bad = values.isna() & text.notna() & (text != "")
    bad &= ~text.str.lower().isin(["nan", "na", "null", "none"])
    shown = text.to_numpy(dtype=object)
    add_issue(issues, bad, lambda p: f"{name} {shown[p]!r} is not a number")
    return values


def parse_timestamps(
    raw: pd.Series, unit: str, name: str, issues: pd.Series, detected: str | None = None
) -> tuple[pd.Series, dict[str, Any]]:
    """UTC timestamps from ``raw``; stats say which form was detected and how often each occurs.

    ``detected`` (with ``unit="auto"``): the form to read, instead of this column's most
    common one; a file read in batches passes the whole file's.
    """
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC"), {"timestamp_unit": "datetime"}
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        return raw.dt.tz_localize("UTC"), {"timestamp_unit": "datetime (no zone, taken as UTC)"}
    numeric_dtype = pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(
        raw.dtype
    )
    text = raw.astype("str").str.strip()
    number = raw.astype("float64") if numeric_dtype else pd.Series(np.nan, index=raw.index)
    if not numeric_dtype:
        looks_numeric = text.str.fullmatch(_NUMBER).fillna(False).astype(bool)
        number[looks_numeric] = pd.to_numeric(text[looks_numeric], errors="coerce")
    kind = pd.Series(None, index=raw.index, dtype=object)
    other = text.notna() & (text != "") & number.isna()
    iso = pd.to_datetime(text[other], utc=True, format="ISO8601", errors="coerce")
    kind[other] = "text"
    kind[iso[iso.notna()].index] = "iso"
    kind[number.notna() & (number.abs() < _MS_THRESHOLD)] = "s"
    kind[number.notna() & (number.abs() >= _MS_THRESHOLD)] = "ms"
    kind[number.notna() & (number.abs() >= _MAX_EPOCH)] = "huge"
    counts = {k: int(n) for k, n in kind.value_counts().items()}
    if unit != "auto":
        detected = unit
    elif detected is None:
        detected = most_common_form(counts)
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    if unit == "mixed":
        for k in _KIND_NAMES:
            out = out.mask(kind == k, _parse(text, number, k, kind == k))
    elif unit == "auto":
        out = _parse(text, number, detected, kind == detected)
    else:
        out = _parse(text, number, unit, kind.notna() if unit == "iso" else number.notna())
    unparsed = out.isna() & kind.notna()
    shown, kinds = raw.astype(object).to_numpy(), kind.to_numpy()
    wrong_form = pd.Series(False, index=raw.index)
    if unit == "auto":
        wrong_form = unparsed & kind.isin(list(_KIND_NAMES)) & (kind != detected)
        add_issue(
            issues,
            wrong_form,
            lambda p: (
                f"{name} {shown[p]!r} looks like {_KIND_NAMES[kinds[p]]} but most of "
                f"this file's timestamps are {_KIND_NAMES[detected]}; set timestamp_unit='mixed' "
                "to accept both"
            ),
        )
    expected = (
        f"{_KIND_NAMES[unit]} (timestamp_unit={unit!r})"
        if unit in _KIND_NAMES
        else "ISO 8601 text nor epoch seconds/milliseconds"
    )
    add_issue(
        issues,
        unparsed & ~wrong_form,
        lambda p: f"{name} {shown[p]!r} is not {expected} within the years 1677-2262",
    )
    stats: dict[str, Any] = {"timestamp_unit": detected, "timestamp_forms": counts}
    naive = (kind == "iso") & ~text.str.contains(_ZONE, regex=True, na=False) & out.notna()
    if naive.any():
        stats["timestamps_without_zone"] = int(naive.sum())
    return out, stats


def most_common_form(counts: dict[str, int]) -> str:
    """The timestamp form most values have ("s" when none has one)."""
    candidates = {k: n for k, n in counts.items() if k in _KIND_NAMES}
    return max(candidates, key=candidates.__getitem__) if candidates else "s"


def _parse(text: pd.Series, number: pd.Series, unit: str, rows: pd.Series) -> pd.Series:
    """Timestamps of ``rows`` read as ``unit``; NaT elsewhere and where out of range."""
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    if unit == "iso":
        parsed = pd.to_datetime(text[rows], utc=True, format="ISO8601", errors="coerce")
        out[rows] = parsed.astype("datetime64[ns, UTC]")
        return out
    scale = 10**9 if unit == "s" else 10**6
    limit = 9.2e18 / scale  # int64 nanoseconds: the years 1677-2262
    ok = rows & number.notna() & (number.abs() < limit)
    whole = np.trunc(number[ok])
    nanos = whole.astype("int64") * scale + np.round((number[ok] - whole) * scale).astype("int64")
    out[ok] = pd.to_datetime(nanos, unit="ns", utc=True)
    return out
