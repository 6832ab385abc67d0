"""How old each training interaction is, and the weights that decay with it.

``fit`` may receive ``ages``: a users x items CSR matrix over the training matrix's
pairs whose value is the age in days of the user's newest event on that item, measured
from one clock for every user (the newest event the model is fitted on), so an
interaction from the model's last day has age 0. A pair the matrix holds and ``ages``
does not (or holds as an explicit zero) is of age 0: data without time, every event
stamped with its ingest date, gives ages all 0, and a time-aware model then fits as it
would without them.

A model that reads ages weights each interaction by ``0.5 ** (age / half_life_days)``
(:func:`decay`): an interaction one half-life old counts half of one from the last day.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

DAY_SECONDS = 86_400.0


def event_seconds(timestamp: np.ndarray) -> np.ndarray:
    """Timestamps as float seconds: datetime64 values (any unit) since the epoch, numbers
    as they are (already seconds)."""
    values = np.asarray(timestamp)
    if np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[ns]").astype(np.int64) / 1e9
    return values.astype(np.float64)


def newest_by_pair(keys: np.ndarray, seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (user, item) pairs among ``keys`` (coded ``user * n_items + item``),
    ascending, and the time in seconds of each pair's newest event."""
    keys = np.asarray(keys, dtype=np.int64)
    seconds = np.asarray(seconds, dtype=np.float64)
    order = np.lexsort((seconds, keys))
    keys, seconds = keys[order], seconds[order]
    last = np.ones(keys.size, dtype=bool)
    last[:-1] = keys[1:] != keys[:-1]
    return keys[last], seconds[last]


def ages_matrix(
    keys: np.ndarray, newest: np.ndarray, shape: tuple[int, int], clock: float | None = None
) -> sp.csr_matrix:
    """Float32 CSR of the age in days of each pair's newest event, measured from ``clock``
    (seconds; default the newest of them all). ``keys`` distinct and ascending, as
    :func:`newest_by_pair` gives them; ages of 0 are stored too."""
    keys = np.asarray(keys, dtype=np.int64)
    newest = np.asarray(newest, dtype=np.float64)
    if clock is None:
        clock = float(newest.max()) if newest.size else 0.0
    days = np.maximum(clock - newest, 0.0) / DAY_SECONDS
    rows = keys // shape[1]
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    return sp.csr_matrix(
        (days.astype(np.float32), (keys % shape[1]).astype(np.int32), indptr), shape=shape
    )


def ages_from_events(
    user_idx: np.ndarray, item_idx: np.ndarray, timestamp: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """The ``ages`` fit input of these events: each pair's newest event's age in days,
    measured from the newest event of all."""
    keys = np.asarray(user_idx, dtype=np.int64) * shape[1] + np.asarray(item_idx, np.int64)
    keys, newest = newest_by_pair(keys, event_seconds(timestamp))
    return ages_matrix(keys, newest, shape)


def check_ages(ages: sp.spmatrix, matrix: sp.csr_matrix, who: str) -> sp.csr_matrix:
    """``ages`` laid on ``matrix``'s pairs (a canonical CSR: sorted, no duplicates): a CSR
    with the matrix's sparsity whose values are the ages, 0 for a pair ``ages`` lacks (a
    pair listed twice keeps its smaller age); a ValueError for another shape or an age
    that is negative or not finite."""
    if ages.shape != matrix.shape:
        raise ValueError(
            f"{who}: ages has shape {ages.shape}, expected the interaction matrix's "
            f"{matrix.shape}; build ages over the same user and item indices"
        )
    given = sp.coo_matrix(ages)
    values = np.asarray(given.data, dtype=np.float64)
    if values.size and not (np.isfinite(values).all() and values.min() >= 0):
        raise ValueError(
            f"{who}: ages must be finite and >= 0 (days before the newest event), got "
            f"{values.min()}..{values.max()}; measure them from the newest training event"
        )
    n_items = matrix.shape[1]
    keys = given.row.astype(np.int64) * n_items + given.col
    order = np.lexsort((values, keys))
    keys, values = keys[order], values[order]
    first = np.ones(keys.size, dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    keys, values = keys[first], values[first]
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    wanted = rows * n_items + matrix.indices
    aligned = np.zeros(wanted.size, dtype=np.float32)
    if keys.size:
        at = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
        found = keys[at] == wanted
        aligned[found] = values[at[found]]
    return sp.csr_matrix((aligned, matrix.indices.copy(), matrix.indptr.copy()), shape=matrix.shape)


def decay(ages: np.ndarray, half_life_days: float | None) -> np.ndarray:
    """``0.5 ** (ages / half_life_days)`` in float64; ones without a half-life."""
    ages = np.asarray(ages, dtype=np.float64)
    if half_life_days is None:
        return np.ones_like(ages)
    return np.power(0.5, ages / half_life_days)


def decayed(
    matrix: sp.csr_matrix, ages: sp.csr_matrix | None, half_life_days: float | None
) -> sp.csr_matrix:
    """The interactions weighted by their decay: ``matrix``'s pairs (binarised) with
    values :func:`decay` of their ages (``ages`` as :func:`check_ages` lays them on
    ``matrix``); weights of 1 without ages or a half-life."""
    weights = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    weights.data = (weights.data > 0).astype(np.float64)
    if ages is not None and half_life_days is not None:
        weights.data *= decay(ages.data, half_life_days)
    return weights
