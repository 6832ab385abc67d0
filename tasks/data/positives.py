"""Which events count as positive feedback (``FeatureConfig.positive``).

A rating of 2 out of 5 is an interaction, not a liking: training on it as a positive
teaches the models what the user disliked, and a reason "because you watched X" naming
it reads wrong. The rule decides, per event, whether it counts as a positive in
training, in the hold-out and in reasons; every event still counts as *seen* (a
low-rated item is never recommended back to the user who rated it).

* ``auto`` (default): rated events (``event_type`` "rating") are positive when their
  value is at least ``positive_min_value``; every other event (views, purchases,
  implicit data without a value or an event type) is positive, as it always was;
* ``min_value``: every event with a value is positive when the value is at least
  ``positive_min_value`` (events without a value are positive);
* ``user_mean``: ... when the value is at least the mean of that user's values;
* ``all``: every event is positive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import pyarrow as pa

RATING = "rating"
RULES = ("auto", "min_value", "user_mean", "all")


def positive_mask(frame: pd.DataFrame, rule: str, min_value: float = 4.0) -> np.ndarray:
    """True for the rows of ``frame`` (``user_id`` or ``user_idx``, optional ``value`` and
    ``event_type``) that count as positive under ``rule`` (module docstring)."""
    _check(rule)
    if rule == "all" or "value" not in frame:
        return np.ones(len(frame), dtype=bool)
    value = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=np.float64)
    rated = None
    if "event_type" in frame:
        rated = frame["event_type"].astype("str").to_numpy() == RATING
    user = None
    if rule == "user_mean":
        user = (frame["user_idx"] if "user_idx" in frame else frame["user_id"]).to_numpy()
    return positive_flags(rule, min_value, value, rated, user)


def positive_table_mask(
    table: pa.Table, rule: str, min_value: float, user: np.ndarray | None = None
) -> np.ndarray:
    """:func:`positive_mask` of an Arrow table; ``user``: any code per row that is equal for
    the rows of one user (needed by ``user_mean`` only; the table's ``user_id`` otherwise)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    _check(rule)
    if rule == "all" or "value" not in table.column_names:
        return np.ones(table.num_rows, dtype=bool)
    column = table["value"]
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        value = column.cast(pa.float64()).to_numpy()  # nulls -> NaN
    else:
        text = pd.Series(column.to_numpy(zero_copy_only=False))
        value = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    rated = None
    if "event_type" in table.column_names:
        kind = table["event_type"]
        if not (pa.types.is_string(kind.type) or pa.types.is_large_string(kind.type)):
            kind = kind.cast(pa.large_string())
        rated = pc.fill_null(pc.equal(kind, RATING), False).to_numpy()
    if rule == "user_mean" and user is None:
        user = pc.dictionary_encode(table["user_id"].combine_chunks()).indices.to_numpy()
    return positive_flags(rule, min_value, value, rated, user)


def positive_flags(
    rule: str,
    min_value: float,
    value: np.ndarray,
    rated: np.ndarray | None,
    user: np.ndarray | None,
) -> np.ndarray:
    """The rule on plain arrays: ``value`` (NaN when missing), ``rated`` (event type is
    "rating"; None without event types), ``user`` (a code per row, for ``user_mean``)."""
    n = len(value)
    has_value = np.isfinite(value)
    if rule == "all":
        return np.ones(n, dtype=bool)
    if rule == "auto":
        if rated is None:
            return np.ones(n, dtype=bool)
        judged = has_value & rated
        threshold = np.full(n, min_value)
    elif rule == "min_value":
        judged, threshold = has_value, np.full(n, min_value)
    else:  # user_mean
        scored = pd.Series(np.where(has_value, value, np.nan))
        threshold = scored.groupby(np.asarray(user)).transform("mean").to_numpy()
        judged = has_value
    return ~judged | (value >= threshold)


def _check(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(
            f"features.positive {rule!r} is not a rule; expected auto, min_value, user_mean or all"
        )
