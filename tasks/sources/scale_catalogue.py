"""The items of the synthetic log at scale (tasks/sources/scale.py), and how events pick them.

Items have a primary genre (a quarter of them a second one too), a Zipf(1.1) popularity
by a random rank within the primary genre, a year and a title "The <Adjective> <Noun>
(year)". An event's item is drawn by inverse CDF of its genre's popularity, where items
whose *second* genre it is count at a quarter of their popularity (the demo's squared
half affinity).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tasks.sources.demo import _ADJECTIVES, _NOUNS, GENRES

SECOND_GENRE_SHARE = 0.25  # items with a second genre
SECOND_GENRE_WEIGHT = 0.25  # popularity weight of an item within its second genre
ZIPF_EXPONENT = 1.1

ITEMS_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("title", pa.string()),
        ("genres", pa.string()),
        ("primary_genre", pa.string()),
        ("year", pa.int64()),
    ]
)


class Catalogue:
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
