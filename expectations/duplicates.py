"""Duplicate keys of the interactions, found vectorised: the rows GX's compound-unique
check flagged (every copy of a repeated key) and the clean rows dropped as duplicates (a
clean row whose key an earlier clean row has), with pandas' meaning of equal (null
equals null)."""

from __future__ import annotations

import numpy as np

from expectations.flags import Columns


def duplicate_masks(
    columns: Columns, key: list[str], clean: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose key is not unique (every copy; rows with every key value null are left
    out, as GX's compound-unique check does), and the clean rows dropped as duplicates:
    a clean row whose key an earlier clean row has. Null equals null, as in pandas.

    One stable sort of the rows by their key's codes (``np.lexsort``), so equal keys sit
    together in input order: a multi-column Arrow group-by over ~1M distinct keys costs
    several times more."""
    n = columns.table.num_rows
    every_null = np.ones(n, dtype=bool)
    for name in key:
        every_null &= columns.null(name)
    codes = _packed([columns.codes(name) for name in key])
    order = np.lexsort(codes[::-1])  # equal keys together, in input order (stable)
    repeated = np.zeros(n, dtype=bool)
    repeated[order] = _in_runs(codes, order)
    repeated &= ~every_null
    kept = order[clean[order]]  # the clean rows, equal keys together, in input order
    dropped = np.zeros(n, dtype=bool)
    dropped[kept] = _later_in_run(codes, kept)
    return repeated, dropped


def _packed(codes: list[np.ndarray]) -> list[np.ndarray]:
    """Keys equal exactly when ``codes`` are, in fewer int64 arrays: codes packed together,
    narrowest first, while their ranges' product fits (ids and event types do; a
    timestamp's ticks mostly stay on their own)."""
    ranges = [(int(c.min(initial=0)), int(c.max(initial=0))) for c in codes]
    packed: list[np.ndarray] = []
    current, span = None, 1
    for i in sorted(range(len(codes)), key=lambda i: ranges[i][1] - ranges[i][0]):
        c, (low, high) = codes[i], ranges[i]
        width = high - low + 1
        if current is not None and span * width < 2**62:
            current, span = current * width + (c - low), span * width
            continue
        if current is not None:
            packed.append(current)
        current, span = c - low, width
    if current is not None:
        packed.append(current)
    return packed


def _same_as_previous(codes: list[np.ndarray], order: np.ndarray) -> np.ndarray:
    """For each position of ``order`` after the first: its key equals the previous one's."""
    same = np.ones(max(len(order) - 1, 0), dtype=bool)
    for c in codes:
        sorted_codes = c[order]
        same &= sorted_codes[1:] == sorted_codes[:-1]
    return same


def _later_in_run(codes: list[np.ndarray], order: np.ndarray) -> np.ndarray:
    """Positions of ``order`` whose key equals the previous position's (not the first copy)."""
    out = np.zeros(len(order), dtype=bool)
    out[1:] = _same_as_previous(codes, order)
    return out


def _in_runs(codes: list[np.ndarray], order: np.ndarray) -> np.ndarray:
    """Positions of ``order`` in a run of two or more equal keys."""
    same = _same_as_previous(codes, order)
    out = np.zeros(len(order), dtype=bool)
    out[1:] |= same
    out[:-1] |= same
    return out
