"""The row checks of the interactions suite, computed vectorised on an Arrow table.

Each :class:`RowCheck` is one expectation of the suite: the rule it stands for (the GX
expectation type, column and arguments it replaces), the reason a failing row is
quarantined with, and how to find the failing rows in Arrow / numpy, with the meaning GX
gave the rule on pandas (nulls skipped by every check but the null checks; Python's
``re`` for the id patterns: ``\\s`` is Unicode whitespace and ``$`` also matches before a
final newline; lengths in code points). ``tests/tasks/validation/test_same_answers.py``
holds this to the answers GX gave on the bad-input catalog and on each check's edge cases.

GX then validates one column per check (the failing rows' values as text, null
elsewhere): see ``expectations/interactions.py``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    import pandas as pd

# Python's ``\s`` on str (``str.isspace``), spelled for RE2, which Arrow's regex kernels use.
PY_WHITESPACE = (
    r"\t\n\x0b\x0c\r\x1c-\x20\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}"
    r"\x{202f}\x{205f}\x{3000}"
)
_CONTROL = r"\x00-\x1f\x7f"
_END = r"\n?$"  # Python's "$": the end, or just before a newline at the end
BLANK_RE2 = rf"^[{PY_WHITESPACE}]*{_END}"  # common.BLANK_REGEX
WELL_FORMED_RE2 = (  # common.WELL_FORMED_ID_REGEX
    rf"^[{PY_WHITESPACE}]*{_END}|"
    rf"^[^{PY_WHITESPACE}{_CONTROL}](?:[^{_CONTROL}]*[^{PY_WHITESPACE}{_CONTROL}])?{_END}"
)
NULL_TEXT = "<null>"  # how a null offending value is shown


@dataclass(frozen=True)
class RowCheck:
    """One row-level expectation. ``check`` names its flag column in the GX batch; ``kind``
    says how its failing rows are found (see :func:`check_masks`); ``column`` and
    ``expectation`` (with ``rule``, its arguments) are the GX expectation it stands for,
    as results and summaries report it; ``looks_at`` is the input column it reads."""

    check: str
    kind: str
    looks_at: str
    expectation: str
    column: str | None
    reason: str
    rule: dict = field(default_factory=dict)

    def source(self) -> dict:
        return {"expectation": self.expectation, "column": self.column, **self.rule}


def id_checks(column: str, max_length: int) -> list[RowCheck]:
    """Present, not blank, no surrounding whitespace or control characters, not too long."""
    from expectations.common import BLANK_REGEX, WELL_FORMED_ID_REGEX

    blank = f"{column} is null or blank"
    return [
        RowCheck(
            f"{column} is null",
            "null",
            column,
            "expect_column_values_to_not_be_null",
            column,
            blank,
        ),
        RowCheck(
            f"{column} is blank",
            "blank",
            column,
            "expect_column_values_to_not_match_regex",
            column,
            blank,
            {"regex": BLANK_REGEX},
        ),
        RowCheck(
            f"{column} is not well formed",
            "malformed",
            column,
            "expect_column_values_to_match_regex",
            column,
            f"{column} has surrounding whitespace or control characters",
            {"regex": WELL_FORMED_ID_REGEX},
        ),
        RowCheck(
            f"{column} is too long",
            "too_long",
            column,
            "expect_column_value_lengths_to_be_between",
            column,
            f"{column} longer than {max_length} characters",
            {"max_value": max_length},
        ),
    ]


class Columns:
    """An Arrow table and what the checks derive from its columns, each computed once:
    null masks, the id patterns, value codes."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self._cache: dict[tuple[str, str], object] = {}

    def _once(self, what: str, name: str, compute):
        if (what, name) not in self._cache:
            self._cache[what, name] = compute(self.table.column(name))
        return self._cache[what, name]

    def null(self, name: str) -> np.ndarray:
        """Null, NaT or NaN."""
        return self._once("null", name, _null)

    def id_shape(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(blank, malformed) of an id column: the two patterns of ``common.py``."""
        return self._once("shape", name, lambda col: _id_shape(col, self.null(name)))

    def codes(self, name: str) -> np.ndarray:
        """int64 codes equal exactly when the values are (null has its own)."""
        return self._once("codes", name, _key_codes)


def check_masks(
    checks: list[RowCheck],
    columns: Columns,
    bounds: tuple[pd.Timestamp, pd.Timestamp],
    catalog: pa.Array | None,
) -> dict[str, np.ndarray]:
    """Each check's failing rows: a boolean numpy array per check."""
    return {c.check: _mask(c, columns, bounds, catalog) for c in checks}


def _mask(
    c: RowCheck,
    columns: Columns,
    bounds: tuple[pd.Timestamp, pd.Timestamp],
    catalog: pa.Array | None,
) -> np.ndarray:
    kind, name = c.kind, c.looks_at
    col = columns.table.column(name)
    if kind == "null":  # null, NaT or NaN
        return columns.null(name)
    if kind == "blank":
        return columns.id_shape(name)[0]
    if kind == "malformed":
        return columns.id_shape(name)[1]
    if kind == "too_long":
        return _np(pc.greater(pc.utf8_length(col), c.rule["max_value"]))
    if kind == "before":
        return timestamp_outside(col, bounds[0], before=True)
    if kind == "after":
        return timestamp_outside(col, bounds[1], before=False)
    if kind == "not_finite":
        return np.isinf(_values(col))
    if kind == "outside":
        values = _values(col)
        with np.errstate(invalid="ignore"):
            return (values < c.rule["min_value"]) | (values > c.rule["max_value"])
    if kind == "max_events":
        return user_event_counts(columns.codes(name)) > c.rule["max_value"]
    if kind == "not_in_catalog":  # a null or blank id is left to the id checks
        if catalog is None:
            raise ValueError(f"check {c.check!r} needs the item catalog; none was given")
        present = ~columns.null(name) & ~columns.id_shape(name)[0]
        return present & ~_np(pc.is_in(col, value_set=catalog.cast(col.type)))
    if kind == "not_null":
        return ~columns.null(name)
    raise ValueError(f"no vectorised flag for check {c.check!r} (kind {kind!r})")


def user_event_counts(codes: np.ndarray) -> np.ndarray:
    """Each row's user's number of events, from the user ids' codes (:meth:`Columns.codes`;
    null ids count as one user)."""
    if not len(codes):
        return codes
    dense = codes - codes.min()
    return np.bincount(dense)[dense]


def _id_shape(col: pa.ChunkedArray, null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blank and malformed rows of an id column, by the patterns' Python meaning. An id of
    letters and digits only (most ids) is neither, so only the others go through RE2."""
    n = len(null)
    blank, malformed = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    others = np.flatnonzero(~_np(pc.utf8_is_alnum(col)) & ~null)
    if len(others):
        subset = pc.take(col, pa.array(others))
        blank[others] = _matches(subset, BLANK_RE2)
        malformed[others] = ~_matches(subset, WELL_FORMED_RE2)
    return blank, malformed


def _key_codes(col: pa.ChunkedArray) -> np.ndarray:
    """int64 codes that are equal exactly when the values are (null: its own code)."""
    if pa.types.is_timestamp(col.type) or pa.types.is_integer(col.type):
        ticks = pc.fill_null(pc.cast(col, pa.int64()), np.iinfo(np.int64).min)  # NaT's value
        ticks = ticks.combine_chunks() if isinstance(ticks, pa.ChunkedArray) else ticks
        return ticks.to_numpy(zero_copy_only=False)
    return _codes(col, nulls=True)


def flag_column(check: RowCheck, columns: Columns, mask: np.ndarray) -> pd.Categorical:
    """The failing rows' values as text, null elsewhere: the column GX validates for
    ``check`` (so the Data Docs show the failing values)."""
    if not mask.any():
        return failing_values(mask, pa.array([], pa.string()))
    col = columns.table.column(check.looks_at)
    rows = np.flatnonzero(mask)
    values = pc.take(col, pa.array(rows))
    text = pc.fill_null(values.cast(pa.string()), NULL_TEXT)
    if check.kind == "max_events":
        counts = user_event_counts(columns.codes(check.looks_at))[rows]
        text = pa.array(
            [f"{u}: {c} events" for u, c in zip(text.to_pylist(), counts, strict=False)]
        )
    return failing_values(mask, text)


def failing_values(mask: np.ndarray, text: pa.Array | pa.ChunkedArray) -> pd.Categorical:
    """``text`` (one value per True of ``mask``) at those rows, null elsewhere, as a pandas
    categorical: a column of codes, cheap for GX to hash and test for nulls."""
    import pandas as pd

    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    encoded = pc.dictionary_encode(text.cast(pa.string()))
    codes = np.full(len(mask), -1, dtype=np.int32)
    codes[mask] = encoded.indices.to_numpy(zero_copy_only=False)
    categories = pd.Index(encoded.dictionary.to_pylist(), dtype="str")
    return pd.Categorical.from_codes(codes, categories=categories)


def _np(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean Arrow result as numpy (null as False)."""
    values = pc.fill_null(values, False)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values.to_numpy(zero_copy_only=False)


def _null(col: pa.ChunkedArray) -> np.ndarray:
    return _np(pc.is_null(col, nan_is_null=True))


def _matches(col: pa.ChunkedArray, pattern: str) -> np.ndarray:
    return _np(pc.match_substring_regex(col, pattern=pattern))


def _values(col: pa.ChunkedArray) -> np.ndarray:
    """A numeric column as float64 numpy, null as NaN (GX skips null and NaN)."""
    values = pc.cast(col, pa.float64())
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return values.to_numpy(zero_copy_only=False)


def timestamp_outside(col: pa.ChunkedArray, bound: pd.Timestamp, *, before: bool) -> np.ndarray:
    """Non-null timestamps before (or after) ``bound``, compared exactly in the column's unit."""
    per_unit = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[col.type.unit]
    nanos = int(bound.value)
    limit = -(-nanos // per_unit) if before else nanos // per_unit  # ceil / floor
    limit = max(min(limit, sys.maxsize), -sys.maxsize)
    ticks = pc.cast(col, pa.int64())
    flagged = pc.less(ticks, limit) if before else pc.greater(ticks, limit)
    return _np(flagged)


def _codes(values: pa.ChunkedArray | pa.Array, nulls: bool = False) -> np.ndarray:
    """Dense int64 codes of equal values (hash-based); with ``nulls``, null is code -1."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(values)
    codes = encoded.indices
    if nulls:
        codes = pc.fill_null(codes, -1)
    return codes.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
