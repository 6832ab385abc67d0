"""The demo dataset: a deterministic synthetic catalogue and interaction log.

Structure that a recommender can find, so a user can see that it works:

* items belong to one primary genre (some to a second one) and have a
  long-tail popularity (Zipf within each genre);
* each user has a latent taste over genres drawn from a sparse Dirichlet, so
  most users watch mostly one or two genres;
* activity per user is log-normal (a few heavy users, many light ones);
* events are spread over ``weeks`` weeks ending at ``end``; a rating 1-5 grows
  with how much the user likes the item's genre.

The same ``seed`` and ``end`` always give the same rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GENRES = [
    "Action",
    "Comedy",
    "Drama",
    "Horror",
    "Romance",
    "Sci-Fi",
    "Documentary",
    "Animation",
    "Thriller",
    "Western",
    "Fantasy",
    "Crime",
    "Musical",
    "Mystery",
    "War",
    "Adventure",
    "Family",
    "Biography",
]

_ADJECTIVES = [
    "Silent",
    "Crimson",
    "Last",
    "Hidden",
    "Broken",
    "Golden",
    "Midnight",
    "Lost",
    "Electric",
    "Frozen",
    "Wild",
    "Secret",
    "Burning",
    "Distant",
    "Hollow",
    "Iron",
    "Velvet",
    "Savage",
    "Quiet",
    "Endless",
    "Bright",
    "Dark",
    "Little",
    "Final",
]
_NOUNS = [
    "River",
    "Empire",
    "Garden",
    "Signal",
    "Harbor",
    "Machine",
    "Summer",
    "Road",
    "Kingdom",
    "Stranger",
    "Mirror",
    "Frontier",
    "Letter",
    "Storm",
    "Island",
    "Orchestra",
    "Witness",
    "Horizon",
    "Canyon",
    "Lantern",
    "Planet",
    "Circus",
    "Detective",
    "Voyage",
]


def generate_demo(
    n_users: int = 2000,
    n_items: int = 1000,
    n_genres: int = 10,
    mean_interactions: float = 40.0,
    weeks: int = 8,
    seed: int = 42,
    end: pd.Timestamp | str = "2026-01-01",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(interactions, items)``.

    interactions: user_id, item_id, timestamp (UTC), value (rating 1-5), event_type.
    items: item_id, title, genres ("A|B"), primary_genre, year.
    """
    if not 2 <= n_genres <= len(GENRES):
        raise ValueError(f"n_genres must be in 2..{len(GENRES)}, got {n_genres}")
    rng = np.random.default_rng(seed)
    genres = GENRES[:n_genres]

    # Items: primary genre, optional secondary genre, long-tail popularity.
    primary = rng.integers(0, n_genres, size=n_items)
    has_second = rng.random(n_items) < 0.25
    second = (primary + rng.integers(1, n_genres, size=n_items)) % n_genres
    rank_in_genre = np.zeros(n_items)
    for g in range(n_genres):
        idx = np.flatnonzero(primary == g)
        rank_in_genre[idx] = rng.permutation(len(idx)) + 1
    popularity = 1.0 / rank_in_genre**1.1
    years = rng.integers(1950, 2026, size=n_items)
    item_ids = np.array([f"i{j:05d}" for j in range(n_items)])
    titles = [
        f"The {_ADJECTIVES[rng.integers(len(_ADJECTIVES))]} {_NOUNS[rng.integers(len(_NOUNS))]}"
        f" ({years[j]})"
        for j in range(n_items)
    ]
    item_genres = [
        genres[primary[j]] + (f"|{genres[second[j]]}" if has_second[j] else "")
        for j in range(n_items)
    ]
    items = pd.DataFrame(
        {
            "item_id": item_ids,
            "title": titles,
            "genres": item_genres,
            "primary_genre": [genres[g] for g in primary],
            "year": years.astype("int64"),
        }
    )

    # Genre membership matrix (items x genres), secondary genre weighs half.
    membership = np.zeros((n_items, n_genres))
    membership[np.arange(n_items), primary] = 1.0
    membership[np.flatnonzero(has_second), second[has_second]] = 0.5

    # Users: sparse taste over genres, log-normal activity.
    tastes = rng.dirichlet(np.full(n_genres, 0.15), size=n_users)
    sigma = 0.8
    mu = np.log(mean_interactions) - sigma**2 / 2
    counts = np.clip(np.round(rng.lognormal(mu, sigma, size=n_users)), 3, n_items // 2).astype(int)

    end_ts = pd.Timestamp(end)
    end_ts = end_ts.tz_localize("UTC") if end_ts.tzinfo is None else end_ts.tz_convert("UTC")
    span_s = weeks * 7 * 24 * 3600
    start_s = int(end_ts.timestamp()) - span_s

    users_col, items_col, ts_col, val_col = [], [], [], []
    for u in range(n_users):
        affinity = membership @ tastes[u]
        weights = popularity * (affinity**2 + 0.002)
        weights /= weights.sum()
        chosen = rng.choice(n_items, size=counts[u], replace=False, p=weights)
        # Each user is active over a window of the span; events sorted in time.
        first = rng.uniform(0, span_s * 0.8)
        times = np.sort(rng.uniform(first, span_s, size=counts[u])).astype(np.int64)
        like = affinity[chosen] / max(affinity.max(), 1e-9)
        ratings = np.clip(np.round(1 + 4 * like + rng.normal(0, 0.7, size=counts[u])), 1, 5)
        users_col.append(np.full(counts[u], u))
        items_col.append(chosen)
        ts_col.append(start_s + times)
        val_col.append(ratings)

    u_idx = np.concatenate(users_col)
    i_idx = np.concatenate(items_col)
    ts = np.concatenate(ts_col)
    values = np.concatenate(val_col).astype("float64")
    interactions = pd.DataFrame(
        {
            "user_id": pd.array([f"u{u:05d}" for u in u_idx], dtype="str"),
            "item_id": pd.array(item_ids[i_idx], dtype="str"),
            "timestamp": pd.to_datetime(ts, unit="s", utc=True),
            "value": values,
            "event_type": pd.array(np.where(values >= 4, "rating", "view"), dtype="str"),
        }
    )
    interactions = interactions.sort_values(["timestamp", "user_id"], kind="stable")
    return interactions.reset_index(drop=True), items


def generate_demo_friends(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    mean_friends: float = 6.0,
    newcomers: int = 10,
    seed: int = 42,
) -> pd.DataFrame:
    """Mutual friendships among the demo's users, with homophily: ``user_id``,
    ``friend_id``, ``weight`` (1.0), one row per pair.

    Each user's taste is the genre they watched most (the primary genre of their items);
    each user starts about ``mean_friends / 2`` friendships (Poisson), four in five with
    a user of the same taste, so friends tend to like what the user likes. ``newcomers``
    users (``n00000``, ...) have friends of one taste and no interactions at all: the
    social cold start on the zero-config demo. The same inputs always give the same rows.
    """
    rng = np.random.default_rng(seed + 1)
    genre = items.set_index("item_id")["primary_genre"]
    watched = interactions.assign(genre=interactions["item_id"].map(genre))
    counts = watched.groupby(["user_id", "genre"], observed=True).size()
    taste = counts.groupby(level="user_id").idxmax().map(lambda pair: pair[1]).sort_index()
    users = taste.index.to_numpy(dtype=str)
    groups = {g: np.flatnonzero(taste.to_numpy() == g) for g in pd.unique(taste.to_numpy())}
    mine = [groups[g] for g in taste.to_numpy()]
    pairs: set[tuple[int, int]] = set()
    for u, started in enumerate(rng.poisson(mean_friends / 2, size=len(users))):
        for _ in range(int(started)):
            pool = mine[u] if rng.random() < 0.8 and len(mine[u]) > 1 else np.arange(len(users))
            v = int(pool[rng.integers(len(pool))])
            if v != u:
                pairs.add((min(u, v), max(u, v)))
    left = [users[a] for a, _ in sorted(pairs)]
    right = [users[b] for _, b in sorted(pairs)]
    tastes = sorted(groups)
    for n in range(newcomers):
        pool = groups[tastes[rng.integers(len(tastes))]]
        for v in rng.choice(pool, size=min(len(pool), int(rng.integers(2, 6))), replace=False):
            left.append(f"n{n:05d}")
            right.append(users[v])
    return pd.DataFrame(
        {
            "user_id": pd.array(left, dtype="str"),
            "friend_id": pd.array(right, dtype="str"),
            "weight": np.ones(len(left), dtype="float64"),
        }
    )
