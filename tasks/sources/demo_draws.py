"""Which item each event of the demo dataset is (``tasks/sources/demo.py``).

An event of user u on day d picks item i with weight
``appeal[d, i] * (affinity(u, i)^2 + 0.002)``, where the affinity is the item's genre
membership weighed by the user's taste at the event's time, and never an item the user
already has. Most events are drawn in two steps, cheap whatever the catalogue's size:
a genre mix (the items sharing a row of the membership matrix) by its summed appeal
that day times the user's affinity, then an item of that mix by its appeal; a draw the
user already has is drawn again. The events still open after a few rounds (heavy users
near the end of what they like) are drawn over all items, leaving out what the user
has, so every draw ends.
"""

from __future__ import annotations

import numpy as np

FAST_ROUNDS = 12  # rounds drawn by genre mix before the rest are drawn item by item
EXACT_ROWS = 2048  # events drawn item by item in one round (memory: rows x items)
FLOOR = 0.002  # weight of an item outside every genre the user likes


def draw_items(
    owner: np.ndarray,
    day: np.ndarray,
    moved: np.ndarray,
    tastes: np.ndarray,
    later: np.ndarray,
    membership: np.ndarray,
    appeal: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the item of each event and how much its user likes it (0..1).

    owner, day, moved: per event, sorted by user then time (``moved``: how far the
    user's taste has gone from ``tastes`` towards ``later``, 0..1). membership: items x
    genres. appeal: days x items, 0 before an item's release; no user may have more
    events than items with appeal on the first day.
    """
    n_items = appeal.shape[1]
    mixes, mix_of = np.unique(membership, axis=0, return_inverse=True)
    mix_of = mix_of.ravel()
    by_mix = np.argsort(mix_of, kind="stable")
    edges = np.searchsorted(mix_of[by_mix], np.arange(len(mixes) + 1))
    # Cumulative appeal over (day, items grouped by mix), flattened: a mix's items on a
    # day are the range [lo, hi) of it.
    cum = np.concatenate([[0.0], np.cumsum(appeal[:, by_mix])])
    lo = np.arange(len(appeal))[:, None] * n_items + edges[:-1]
    hi = lo + np.diff(edges)
    mass = (cum[hi] - cum[lo]).astype(np.float32)

    chosen = np.full(len(owner), -1, dtype=np.int64)
    like = np.zeros(len(owner))
    held = np.empty(0, dtype=np.int64)  # sorted keys user * n_items + item
    pending = np.arange(len(owner))
    rounds = 0
    while len(pending):
        exact = rounds >= FAST_ROUNDS or len(pending) <= EXACT_ROWS
        if exact:
            pending = pending[:EXACT_ROWS]
        d, u = day[pending], owner[pending]
        taste = (1.0 - moved[pending, None]) * tastes[u] + moved[pending, None] * later[u]
        affinity = taste @ mixes.T  # events x mixes
        if exact:
            weights = appeal[d] * (affinity[:, mix_of] ** 2 + FLOOR)
            rows, items = _held_by(u, held, n_items)
            weights[rows, items] = 0.0
            item = _row_choice(weights, rng)
        else:
            weights = np.square(affinity, dtype=np.float32)
            weights += FLOOR
            weights *= mass[d]
            mix = _row_choice(weights, rng)
            a, b = lo[d, mix], hi[d, mix]
            spot = cum[a] + rng.random(len(pending)) * (cum[b] - cum[a])
            pos = np.clip(np.searchsorted(cum, spot, side="right") - 1, a, b - 1)
            item = by_mix[pos - d * n_items]
        key = u * n_items + item
        ok = (appeal[d, item] > 0) & ~_contains(held, key)
        # of the same item drawn twice by one user this round, the earlier event keeps it
        first = _first_of_each(key, ok)
        if exact and not first.any():
            raise ValueError("a user has more events than items to draw from")
        taken = pending[first]
        chosen[taken] = item[first]
        best = np.maximum(affinity[first].max(axis=1), 1e-9)
        like[taken] = affinity[first, mix_of[item[first]]] / best
        held = np.sort(np.concatenate([held, key[first]]))
        pending = np.flatnonzero(chosen < 0)
        rounds += 1
    return chosen, like


def _row_choice(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column per row, drawn with the row's weights (each row has some weight)."""
    n_rows, n_cols = weights.shape
    cum = np.concatenate([[0.0], np.cumsum(weights, axis=None, dtype=np.float64)])
    start, stop = cum[np.arange(n_rows) * n_cols], cum[np.arange(1, n_rows + 1) * n_cols]
    spot = start + rng.random(n_rows) * (stop - start)
    flat = np.searchsorted(cum, spot, side="right") - 1
    return np.clip(flat - np.arange(n_rows) * n_cols, 0, n_cols - 1)


def _first_of_each(key: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Mask of the rows that are ``ok`` and the first ``ok`` row of their key."""
    rows = np.flatnonzero(ok)
    rows = rows[np.argsort(key[rows], kind="stable")]
    keys = key[rows]
    lead = np.ones(len(rows), dtype=bool)
    lead[1:] = keys[1:] != keys[:-1]
    first = np.zeros(len(key), dtype=bool)
    first[rows[lead]] = True
    return first


def _contains(held: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Whether each key is in the sorted array ``held``."""
    at = np.minimum(np.searchsorted(held, key), max(len(held) - 1, 0))
    return held[at] == key if len(held) else np.zeros(len(key), dtype=bool)


def _held_by(users: np.ndarray, held: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, item) of every item each row's user already holds."""
    start = np.searchsorted(held, users * n_items)
    stop = np.searchsorted(held, (users + 1) * n_items)
    counts = stop - start
    rows = np.repeat(np.arange(len(users)), counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    keys = held[np.repeat(start, counts) + within]
    return rows, keys - users[rows] * n_items
