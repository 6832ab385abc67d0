"""The users and events of the synthetic log at scale (tasks/sources/scale.py), a chunk at a time.

* users have a sparse Dirichlet(0.15) taste over genres and a log-normal activity
  (sigma 0.8); per-user counts are allocated so that the total is exactly
  ``n_interactions`` (each user gets at least 3 events when the budget allows, else 1,
  and at most ``n_items // 2`` like the demo);
* an event draws its genre from the user's squared taste (the demo weighs items by
  squared affinity), then its item from the genre's popularity
  (``Catalogue.by_popularity``); 2% of events explore a uniformly random item. The
  later copies of a (user, item) pair are redrawn for a few rounds (by popularity, then
  uniformly within the genre, then uniformly overall), so repeat views stay rare (about
  0.0001% of rows at 10M events, up to ~0.3% when users see a large share of a small
  catalogue); the demo draws without replacement instead;
* each user is active from a random point in the first 80% of the span until its end;
  a user's events get distinct whole-second timestamps in that window (so no two rows
  share user, item and timestamp);
* the rating is 1-5, growing with the user's affinity for the item's genres
  (``1 + 4 * affinity / best affinity + N(0, 0.7)``, rounded and clipped).
"""

from __future__ import annotations

import numpy as np

from tasks.sources.scale_catalogue import Catalogue

EXPLORE_SHARE = 0.02  # events whose item is uniformly random
TASTE_ALPHA = 0.15
ACTIVITY_SIGMA = 0.8
RATING_NOISE = 0.7
# Redraw rounds for repeated (user, item) pairs, in order.
_REDRAW_ROUNDS = ("popularity", "popularity", "genre", "genre", "any", "any")


def user_counts(rng: np.random.Generator, total: int, n_users: int, cap: int) -> np.ndarray:
    """Log-normal activity per user, scaled so the counts sum to exactly ``total``.

    Each user gets ``low`` events (3 when the budget allows, else 1) plus a share of the
    rest proportional to a log-normal draw, at most ``cap`` in all (largest remainders
    round; shares above the cap are handed to the others).
    """
    weights = rng.lognormal(0.0, ACTIVITY_SIGMA, size=n_users)
    low = 3 if total >= 3 * n_users and cap >= 3 else 1
    room = cap - low
    extra = np.zeros(n_users, dtype=np.int64)
    free = np.ones(n_users, dtype=bool)
    remaining = total - low * n_users
    while remaining > 0:
        w = np.where(free, weights, 0.0)
        share = w / w.sum() * remaining
        full = free & (extra + share >= room)
        if full.any():
            extra[full] = room
            free &= ~full
            remaining = total - low * n_users - int(extra.sum())
            continue
        base = np.floor(share).astype(np.int64)
        extra += base
        left = remaining - int(base.sum())
        if left:
            frac = np.where(free, share - base, -1.0)
            extra[np.argsort(-frac, kind="stable")[:left]] += 1
        remaining = 0
    return low + extra


def chunk_events(
    rng: np.random.Generator,
    cat: Catalogue,
    counts: np.ndarray,
    start_s: int,
    span_s: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One chunk's events by timestamp: ``(user within the chunk, item, seconds, value)``.

    Transient memory is about 60 bytes an event (8-byte arrays, a few alive at once).
    """
    n_users, n_genres = len(counts), cat.n_genres
    n = int(counts.sum())
    user = np.repeat(np.arange(n_users, dtype=np.int32), counts)

    tastes = rng.dirichlet(np.full(n_genres, TASTE_ALPHA), size=n_users)
    active_from = np.floor(rng.uniform(0, span_s * 0.8, size=n_users)).astype(np.int64)

    # Genre of each event with probability proportional to the squared taste (the demo
    # weighs items by squared affinity). Row u of the flattened cumulative shares lies in
    # (u, u + 1], so one searchsorted of ``u + uniform`` picks within each user's row.
    cum = np.cumsum(tastes**2, axis=1)
    cum /= cum[:, -1:]
    cum += np.arange(n_users)[:, None]
    query = rng.random(n)
    query += user
    found = np.searchsorted(cum.ravel(), query, side="right")
    del cum, query
    found -= user.astype(np.int64) * n_genres
    genre = np.clip(found, 0, n_genres - 1).astype(np.int16)
    del found

    item = cat.by_popularity(genre, rng.random(n))
    explore = np.flatnonzero(rng.random(n) < EXPLORE_SHARE)
    item[explore] = cat.uniform(rng.random(explore.size))
    del explore
    _redraw_repeats(rng, cat, user, genre, item)
    del genre

    # Timestamps: the user's i-th event (of c) at ``from + floor(U_(i) * (W - c + 1)) + i``
    # with U_(i) sorted uniforms (normalised exponential spacings, no sort needed) and W
    # the window length: strictly increasing whole seconds inside [from, span).
    first_event = np.concatenate([[0], np.cumsum(counts)[:-1]])
    spacing = rng.standard_exponential(n + n_users)
    np.cumsum(spacing, out=spacing)
    ext_start = first_event + np.arange(n_users)  # user u's n_u + 1 spacings start here
    before = np.where(ext_start > 0, spacing[np.maximum(ext_start - 1, 0)], 0.0)
    total = spacing[ext_start + counts] - before
    slack = span_s - active_from - counts  # W - c > 0 as W > span / 5 >= cap >= c
    at = np.arange(n, dtype=np.int64)
    at += user
    fraction = spacing[at]
    del spacing, at
    fraction -= before[user]
    fraction *= ((slack + 1) / total)[user]
    seconds = fraction.astype(np.int64)  # floor, as the fraction is >= 0
    del fraction
    np.minimum(seconds, slack[user], out=seconds)
    seconds += np.arange(n, dtype=np.int64)  # + i, with ...
    seconds += (start_s + active_from - first_event)[user]  # ... i counted from the user

    # Ratings grow with the affinity for the item's genres relative to the user's best.
    flat = tastes.ravel()
    row = user.astype(np.int64)
    row *= n_genres
    at = np.take(cat.primary, item)
    at += row
    value = flat[at]
    np.take(cat.second, item, out=at, mode="clip")  # "clip": no buffer; items are valid
    at += row
    del row
    second = flat[at]
    del at
    second *= cat.second_weight[item]
    value += second
    del second
    best = np.zeros(n_users)
    for combo in cat.combos:
        p, s = divmod(int(combo), n_genres)
        best = np.maximum(best, tastes[:, p] + (0.5 * tastes[:, s] if s != p else 0.0))
    value *= (4.0 / np.maximum(best, 1e-9))[user]
    value += 1.0
    value += rng.normal(0, RATING_NOISE, size=n)
    np.clip(np.round(value, out=value), 1, 5, out=value)

    order = np.argsort(seconds, kind="stable")  # events are in user order: ties by user
    return user[order], item[order], seconds[order], value[order]


def _redraw_repeats(
    rng: np.random.Generator,
    cat: Catalogue,
    user: np.ndarray,
    genre: np.ndarray,
    item: np.ndarray,
) -> None:
    """Redraw (in place) the later copies of repeated (user, item) pairs, a few rounds.

    Each round looks only at the users that still had a repeat in the round before.
    Repeats left after the last round stay (repeat views happen in real logs).
    """
    events = None  # the first round looks at all events
    for how in _REDRAW_ROUNDS:
        key = (user if events is None else user[events]).astype(np.int64)
        key *= cat.n_items
        key += item if events is None else item[events]
        order = np.argsort(key, kind="stable")  # a later copy sorts after the first
        key = key[order]
        repeat = order[1:][key[1:] == key[:-1]]
        del key, order
        if events is not None:
            repeat = events[repeat]
        if repeat.size == 0:
            return
        u = rng.random(repeat.size)
        if how == "popularity":
            item[repeat] = cat.by_popularity(genre[repeat], u)
        elif how == "genre":
            item[repeat] = cat.uniform_in_genre(genre[repeat], u)
        else:
            item[repeat] = cat.uniform(u)
        flagged = np.zeros(int(user[-1]) + 1, dtype=bool)
        flagged[user[repeat]] = True
        events = np.flatnonzero(flagged[user])
