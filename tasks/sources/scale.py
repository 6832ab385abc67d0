"""A synthetic interaction log at scale, streamed to Parquet in bounded memory.

Same structure as the demo dataset (``tasks/sources/demo.py``), built for tens of millions
of events (tested up to 50M interactions, 1M users, 50k items): items with genres, a
Zipf popularity, a year and a title (``tasks/sources/scale_catalogue.py``); users with a
sparse taste over genres and a log-normal activity, whose events pick a genre by taste
and an item by popularity within it, at distinct whole-second timestamps in the user's
active part of the ``weeks`` weeks ending at ``end``, rated 1-5 by the user's affinity
for the item's genres, with ``event_type`` "rating" when the value is >= 4 else "view"
(``tasks/sources/scale_events.py``).

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

from tasks.sources.demo import GENRES
from tasks.sources.scale_catalogue import Catalogue
from tasks.sources.scale_events import chunk_events, user_counts

log = logging.getLogger(__name__)

MAX_CHUNK_EVENTS = 3_000_000  # events per chunk (and file); bounds peak memory
ROW_GROUP = 500_000  # rows per Parquet row group

INTERACTIONS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("value", pa.float64()),
        ("event_type", pa.string()),
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
        catalogue = Catalogue(np.random.default_rng(items_seq), n_items, n_genres)
        pq.write_table(catalogue.table, staging / "items.parquet")

        counts = user_counts(np.random.default_rng(counts_seq), n_interactions, n_users, cap)
        bounds = _chunk_bounds(counts, chunk_users, MAX_CHUNK_EVENTS)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        user_width = max(5, len(str(n_users - 1)))
        names = []
        for k, (a, b) in enumerate(itertools.pairwise(bounds)):
            rng = np.random.default_rng(_child(chunks_seq, k))
            events = chunk_events(rng, catalogue, counts[a:b], start_s, span_s)
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


# --------------------------------------------------------------------------- chunks


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


def _write_chunk(
    path: Path,
    cat: Catalogue,
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
