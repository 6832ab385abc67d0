"""A synthetic interaction log at scale, streamed to Parquet in bounded memory.

Same structure as the demo dataset (``tasks/sources/demo.py``), built for tens of millions
of events (tested up to 50M interactions, 1M users, 50k items):

* items have a primary genre (a quarter of them a second one too), a Zipf(1.1)
  popularity by a random rank within the primary genre, a year and a title
  "The <Adjective> <Noun> (year)";
* users have a sparse Dirichlet(0.15) taste over genres and a log-normal activity
  (sigma 0.8); per-user counts are allocated so that the total is exactly
  ``n_interactions`` (each user gets at least 3 events when the budget allows, else 1,
  and at most ``n_items // 2`` like the demo);
* an event draws its genre from the user's squared taste (the demo weighs items by
  squared affinity), then its item by inverse CDF of the genre's Zipf popularity
  (items whose *second* genre it is count at a quarter of their popularity, the
  demo's squared half affinity); 2% of events explore a uniformly random item. The
  later copies of a (user, item) pair are redrawn for a few rounds (by popularity, then
  uniformly within the genre, then uniformly overall), so repeat views stay rare (about
  0.0001% of rows at 10M events, up to ~0.3% when users see a large share of a small
  catalogue); the demo draws without replacement instead;
* each user is active from a random point in the first 80% of the ``weeks`` weeks
  ending at ``end`` until ``end``; a user's events get distinct whole-second
  timestamps in that window (so no two rows share user, item and timestamp);
* the rating is 1-5, growing with the user's affinity for the item's genres
  (``1 + 4 * affinity / best affinity + N(0, 0.7)``, rounded and clipped), and
  ``event_type`` is "rating" when the value is >= 4 else "view".

Memory. Users are processed in chunks (at most ``chunk_users`` users and at most
``MAX_CHUNK_EVENTS`` events per chunk); each chunk is generated with numpy (about 50
bytes of transient arrays an event), sorted by timestamp and written as one Parquet
file with pyarrow, ``ROW_GROUP`` rows at a time, then dropped. The only whole-run arrays
are per user (activity counts, a few 8-byte arrays while allocating them) and per item,
so peak memory is bounded by the chunk size, not by ``n_interactions``: measured peak
RSS 354 MB at 10M events and 405 MB at 50M events / 1M users / 50k items (about 105 MB
of it is importing pandas and pyarrow), with the default 50,000 users (~2.5M events) a
chunk. Speed: about 11 s per 10M events on one core.

Determinism. Items, activity and every chunk have their own numpy ``SeedSequence``
child of ``seed``; the same arguments (``chunk_users`` included, since it decides the
chunks) always give the same rows.

Layout and atomicity. The output is ``out_dir/items.parquet``,
``out_dir/interactions/part-00000.parquet``, ... and ``out_dir/_manifest.json`` (the
arguments, counts and file list; readers skip names starting with "_"). Everything is
written into a hidden sibling folder ``.<name>.partial-<pid>-<random>`` next to
``out_dir`` and renamed onto ``out_dir`` in one step at the end (an existing empty
``out_dir`` is replaced by the rename), so ``out_dir`` is either absent/empty or
complete. A failure removes the partial folder; only a hard kill can leave one behind,
under its hidden name. ``out_dir`` must be absent or empty: existing data is never
overwritten or mixed with.
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import math
import os
import secrets
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.sources.demo import _ADJECTIVES, _NOUNS, GENRES

log = logging.getLogger(__name__)

MAX_CHUNK_EVENTS = 3_000_000  # events per chunk (and file); bounds peak memory
ROW_GROUP = 500_000  # rows per Parquet row group
EXPLORE_SHARE = 0.02  # events whose item is uniformly random
SECOND_GENRE_SHARE = 0.25  # items with a second genre
SECOND_GENRE_WEIGHT = 0.25  # popularity weight of an item within its second genre
ZIPF_EXPONENT = 1.1
TASTE_ALPHA = 0.15
ACTIVITY_SIGMA = 0.8
RATING_NOISE = 0.7
# Redraw rounds for repeated (user, item) pairs, in order.
_REDRAW_ROUNDS = ("popularity", "popularity", "genre", "genre", "any", "any")

INTERACTIONS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("value", pa.float64()),
        ("event_type", pa.string()),
    ]
)
ITEMS_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("title", pa.string()),
        ("genres", pa.string()),
        ("primary_genre", pa.string()),
        ("year", pa.int64()),
    ]
)


def generate_scale(
    out_dir: str | Path,
    n_interactions: int,
    n_users: int | None = None,
    n_items: int | None = None,
    n_genres: int = 10,
    weeks: int = 8,
    seed: int = 42,
    end: str | pd.Timestamp = "2026-01-01",
    chunk_users: int = 50_000,
) -> dict:
    """Write the synthetic log into ``out_dir`` (absent or empty) and return a summary.

    Defaults: ``n_users = max(100, n_interactions // 50)`` (but at most
    ``n_interactions``, as every user has an event), ``n_items = n_interactions // 1000``
    clipped to 200..50,000.

    Returns ``{"interactions_path", "items_path", "n_interactions", "n_users",
    "n_items", "files", "seconds"}`` where ``files`` lists the interaction Parquet files.
    """
    started = time.perf_counter()
    n_interactions = _check_int("n_interactions", n_interactions, 1)
    if n_users is None:
        n_users = min(n_interactions, max(100, n_interactions // 50))
    if n_items is None:
        n_items = int(np.clip(n_interactions // 1000, 200, 50_000))
    n_users = _check_int("n_users", n_users, 1)
    n_genres = _check_int("n_genres", n_genres, 2)
    if n_genres > len(GENRES):
        raise ValueError(f"n_genres must be in 2..{len(GENRES)}, got {n_genres}")
    n_items = _check_int(
        "n_items", n_items, n_genres, f" (at least one item per genre, n_genres={n_genres})"
    )
    weeks = _check_int("weeks", weeks, 1)
    seed = _check_int("seed", seed, 0)
    chunk_users = _check_int("chunk_users", chunk_users, 1)
    if n_interactions < n_users:
        raise ValueError(
            f"n_interactions must be >= n_users (every user has at least one event), got "
            f"n_interactions={n_interactions} and n_users={n_users}"
        )
    span_s = weeks * 7 * 24 * 3600
    # A user sees at most half the catalogue, and has at most one event a second in the
    # shortest activity window (a fifth of the span; binds only above ~240k items).
    cap = max(1, min(n_items // 2, span_s // 5))
    if n_interactions > n_users * cap:
        raise ValueError(
            f"n_interactions must be <= n_users * {cap} = {n_users * cap} (a user has at most "
            "n_items // 2 events, and at most one a second over a fifth of the weeks), got "
            f"n_interactions={n_interactions} with n_users={n_users} and n_items={n_items}; "
            "add users or items"
        )
    end_ts = _check_end(end)
    out = Path(out_dir).expanduser().resolve()
    _check_out_dir(out)

    root = np.random.SeedSequence(seed)
    items_seq, counts_seq, chunks_seq = root.spawn(3)
    start_s = math.floor(end_ts.timestamp()) - span_s

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    (staging / "interactions").mkdir(parents=True)
    try:
        catalogue = _Catalogue(np.random.default_rng(items_seq), n_items, n_genres)
        pq.write_table(catalogue.table, staging / "items.parquet")

        counts = _user_counts(np.random.default_rng(counts_seq), n_interactions, n_users, cap)
        bounds = _chunk_bounds(counts, chunk_users, MAX_CHUNK_EVENTS)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        user_width = max(5, len(str(n_users - 1)))
        names = []
        for k, (a, b) in enumerate(itertools.pairwise(bounds)):
            rng = np.random.default_rng(_child(chunks_seq, k))
            events = _chunk_events(rng, catalogue, counts[a:b], start_s, span_s)
            name = f"part-{k:05d}.parquet"
            _write_chunk(staging / "interactions" / name, catalogue, events, a, user_width)
            names.append(name)
            log.info("chunk %d: users %d..%d, %d events", k, a, b - 1, offsets[b] - offsets[a])
            del events
        manifest = {
            "generator": "tasks.sources.scale.generate_scale",
            "arguments": {
                "n_interactions": n_interactions,
                "n_users": n_users,
                "n_items": n_items,
                "n_genres": n_genres,
                "weeks": weeks,
                "seed": seed,
                "end": end_ts.isoformat(),
                "chunk_users": chunk_users,
            },
            "files": [f"interactions/{n}" for n in names],
            "rows": int(offsets[-1]),
        }
        (staging / "_manifest.json").write_text(
            json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8"
        )
        try:
            os.rename(staging, out)  # replaces an empty out_dir; the commit point
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            raise FileExistsError(
                f"{out}: could not move the finished data into place ({exc}); expected "
                "an absent or empty folder (did something write into it meanwhile?); "
                "pick an empty folder"
            ) from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {
        "interactions_path": str(out / "interactions"),
        "items_path": str(out / "items.parquet"),
        "n_interactions": int(offsets[-1]),
        "n_users": n_users,
        "n_items": n_items,
        "files": [str(out / "interactions" / n) for n in names],
        "seconds": round(time.perf_counter() - started, 3),
    }


# --------------------------------------------------------------------------- checks


def _check_int(name: str, value: object, minimum: int, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        got = repr(value)  # ValueError like every other bad argument, not TypeError
    elif value < minimum:
        got = str(value)
    else:
        return int(value)
    raise ValueError(f"{name} must be an integer >= {minimum}{why}, got {got}")


def _check_end(end: object) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(end)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"end must be a timestamp or a date string like '2026-01-01', got {end!r} ({exc})"
        ) from exc
    if pd.isna(ts):
        raise ValueError(f"end must be a timestamp or a date string like '2026-01-01', got {end!r}")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; expected an absent or empty folder to write into")
    if out.is_dir():
        entries = sorted(p.name for p in out.iterdir())
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise FileExistsError(
                f"{out} is not empty (contains {shown}); expected an absent or empty folder, "
                "as existing data is never overwritten or mixed with; pick an empty folder "
                "or a new path"
            )


def _child(parent: np.random.SeedSequence, k: int) -> np.random.SeedSequence:
    """The ``k``-th child of ``parent``, the same whatever the number of chunks."""
    return np.random.SeedSequence(parent.entropy, spawn_key=(*parent.spawn_key, k))


# --------------------------------------------------------------------------- items


class _Catalogue:
    """Items (as a pyarrow table) and what sampling needs: per-genre inverse CDFs."""

    def __init__(self, rng: np.random.Generator, n_items: int, n_genres: int) -> None:
        genres = GENRES[:n_genres]
        primary = rng.integers(0, n_genres, size=n_items)
        primary[rng.choice(n_items, size=n_genres, replace=False)] = np.arange(n_genres)
        has_second = rng.random(n_items) < SECOND_GENRE_SHARE
        second = (primary + rng.integers(1, n_genres, size=n_items)) % n_genres
        # Random rank within the primary genre: shuffle, then stable-sort by genre.
        by_genre = rng.permutation(n_items)
        by_genre = by_genre[np.argsort(primary[by_genre], kind="stable")]
        genre_start = np.concatenate([[0], np.cumsum(np.bincount(primary, minlength=n_genres))])
        rank = np.empty(n_items, dtype=np.int64)
        rank[by_genre] = np.arange(n_items) - genre_start[primary[by_genre]] + 1
        popularity = 1.0 / rank**ZIPF_EXPONENT
        years = rng.integers(1950, 2026, size=n_items)
        adjectives = rng.integers(len(_ADJECTIVES), size=n_items)
        nouns = rng.integers(len(_NOUNS), size=n_items)

        width = max(5, len(str(n_items - 1)))
        self.item_ids = pa.array([f"i{j:0{width}d}" for j in range(n_items)], pa.string())
        names = np.array(genres, dtype=object)
        genre_text = names[primary].copy()
        genre_text[has_second] = genre_text[has_second] + "|" + names[second[has_second]]
        self.table = pa.Table.from_arrays(
            [
                self.item_ids,
                pa.array(
                    [
                        f"The {_ADJECTIVES[a]} {_NOUNS[b]} ({y})"
                        for a, b, y in zip(adjectives, nouns, years, strict=True)
                    ],
                    pa.string(),
                ),
                pa.array(genre_text.tolist(), pa.string()),
                pa.array(names[primary].tolist(), pa.string()),
                pa.array(years.astype(np.int64), pa.int64()),
            ],
            schema=ITEMS_SCHEMA,
        )

        self.n_items = n_items
        self.n_genres = n_genres
        self.primary = primary
        self.second = second
        # Weight of the second genre in an item's affinity (0 when it has none).
        self.second_weight = np.where(has_second, 0.5, 0.0)
        # (primary, second) combinations present: the best affinity a user can reach.
        self.combos = np.unique(primary * n_genres + np.where(has_second, second, primary))

        # Sampling table: every (genre, item) membership, sorted by genre. Genre g's
        # segment holds g + (cumulative popularity share), in (g, g + 1], so one
        # searchsorted of ``g + u`` inverts the CDF of every event's genre at once.
        second_idx = np.flatnonzero(has_second)
        member_item = np.concatenate([np.arange(n_items), second_idx])
        member_genre = np.concatenate([primary, second[second_idx]])
        member_weight = np.concatenate([popularity, SECOND_GENRE_WEIGHT * popularity[second_idx]])
        order = np.argsort(member_genre, kind="stable")
        member_item, member_genre = member_item[order], member_genre[order]
        cum = np.cumsum(member_weight[order])
        seg_end = np.cumsum(np.bincount(member_genre, minlength=n_genres))
        seg_start = np.concatenate([[0], seg_end[:-1]])
        base = np.concatenate([[0.0], cum])[seg_start]
        total = cum[seg_end - 1] - base
        self.cdf = member_genre + (cum - base[member_genre]) / total[member_genre]
        self.member_item = member_item.astype(np.int32)
        self.seg_start = seg_start
        self.seg_len = seg_end - seg_start

    def by_popularity(self, genre: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Items drawn from each genre's popularity (inverse CDF of uniforms ``u``)."""
        pos = np.searchsorted(self.cdf, genre + u, side="right")
        pos = np.clip(pos, self.seg_start[genre], self.seg_start[genre] + self.seg_len[genre] - 1)
        return self.member_item[pos]

    def uniform_in_genre(self, genre: np.ndarray, u: np.ndarray) -> np.ndarray:
        pos = self.seg_start[genre] + (u * self.seg_len[genre]).astype(np.int64)
        return self.member_item[np.minimum(pos, self.seg_start[genre] + self.seg_len[genre] - 1)]

    def uniform(self, u: np.ndarray) -> np.ndarray:
        return np.minimum((u * self.n_items).astype(np.int32), self.n_items - 1)


# --------------------------------------------------------------------------- users


def _user_counts(rng: np.random.Generator, total: int, n_users: int, cap: int) -> np.ndarray:
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


def _chunk_bounds(counts: np.ndarray, chunk_users: int, max_events: int) -> list[int]:
    """User offsets of the chunks: at most ``chunk_users`` users and ``max_events`` events
    each (a single user above ``max_events`` gets a chunk of its own)."""
    csum = np.concatenate([[0], np.cumsum(counts)])
    n_users = len(counts)
    bounds = [0]
    while bounds[-1] < n_users:
        a = bounds[-1]
        by_events = int(np.searchsorted(csum, csum[a] + max_events, side="right")) - 1
        bounds.append(max(a + 1, min(n_users, a + chunk_users, by_events)))
    return bounds


def _chunk_events(
    rng: np.random.Generator,
    cat: _Catalogue,
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


def _write_chunk(
    path: Path,
    cat: _Catalogue,
    events: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    first_user: int,
    user_width: int,
) -> None:
    """Write one chunk's events as a Parquet file, one row group per ``ROW_GROUP`` rows
    (so only a row group's strings exist at a time)."""
    user, item, seconds, value = events
    n_users = int(user.max()) + 1 if len(user) else 0
    user_ids = pa.array(
        [f"u{u:0{user_width}d}" for u in range(first_user, first_user + n_users)], pa.string()
    )
    kinds = pa.array(["view", "rating"], pa.string())
    with pq.ParquetWriter(path, INTERACTIONS_SCHEMA) as writer:
        for lo in range(0, len(user), ROW_GROUP):
            hi = lo + ROW_GROUP
            val = value[lo:hi]
            writer.write_table(
                pa.Table.from_arrays(
                    [
                        user_ids.take(pa.array(user[lo:hi])),
                        cat.item_ids.take(pa.array(item[lo:hi])),
                        pa.array(seconds[lo:hi] * 1_000_000, pa.timestamp("us", tz="UTC")),
                        pa.array(val, pa.float64()),
                        kinds.take(pa.array((val >= 4).astype(np.int8))),
                    ],
                    schema=INTERACTIONS_SCHEMA,
                )
            )


def _redraw_repeats(
    rng: np.random.Generator,
    cat: _Catalogue,
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
