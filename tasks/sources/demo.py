"""The demo dataset: a deterministic synthetic catalogue and interaction log.

Structure that a recommender can find, so a user can see that it works:

* items belong to one primary genre (some to a second one) and have a
  long-tail popularity (Zipf within each genre);
* each user has a latent taste over genres drawn from a sparse Dirichlet, so
  most users watch mostly one or two genres at a time;
* activity per user is log-normal (a few heavy users, many light ones), over a
  window of the ``weeks`` weeks ending at ``end``; a rating 1-5 grows with how
  much the user likes the item's genre.

And drift, so that what happened lately predicts what comes next better than
what happened long ago (``drift`` sets how much; ``drift=0`` makes it stationary):

* tastes move: each user's taste slides over the span from a start taste to an
  end taste, and the end tastes lean towards a few genres in fashion, so the
  audience's genre mix moves too;
* items arrive: ``new_items_share`` of the catalogue is released during the span
  (the rest over the year before it, see ``demo_releases``); no item is watched
  before its release;
* appeal fades: an item draws up to ``1 + 8 * drift`` times its lasting
  popularity right after release, a pull that halves every ``half_life_weeks``,
  so "popular lately" is not "popular over all time".

Beyond the ``n_items`` items out by the end, ``upcoming_share`` of that many more are
released on the end day itself: in the catalogue, with content, and without a single
event, so the night has items nobody has seen yet to recommend. They are drawn from a
stream of their own, so the events are the same with or without them.

Each item has content that follows its genres (``tasks/sources/demo_content.py``): a
``description`` of genre words and filler, and an ``image``, the path of a 32 x 32 PNG
(``images/<item_id>.png``) whose colours and motif follow them; ingest writes the files
beside the items table (``write_demo_images``).

Each event's item is drawn at the event's time with the taste and appeal of that
day (``tasks/sources/demo_draws.py``). The same settings, ``seed`` and ``end``
always give the same rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.sources.demo_content import describe_items, genre_indices, image_paths
from tasks.sources.demo_draws import draw_items

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


DAY = 24 * 3600
BUZZ = 8.0  # how many times its lasting appeal a just-released item draws, at drift 1
CATALOG_DAYS = 365  # items out before the span came out over the year before it


def generate_demo(
    n_users: int = 2000,
    n_items: int = 1000,
    n_genres: int = 10,
    mean_interactions: float = 40.0,
    weeks: int = 8,
    seed: int = 42,
    end: pd.Timestamp | str = "2026-01-01",
    drift: float = 1.0,
    new_items_share: float = 0.15,
    half_life_weeks: float = 2.0,
    upcoming_share: float = 0.03,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(interactions, items)``.

    interactions: user_id, item_id, timestamp (UTC), value (rating 1-5), event_type.
    items: item_id, title, genres ("A|B"), primary_genre, year, description, image
    (a path relative to the items table's folder; ``demo_content.write_demo_images``
    writes the files): ``n_items`` items, then ``round(upcoming_share * n_items)``
    released on the end day, that no event names.

    ``drift`` (0..1) is how far tastes travel over the span and how strongly a release
    draws the crowd; ``new_items_share`` of the items come out during the span;
    ``half_life_weeks`` is how fast a release's pull fades. ``drift=0`` gives stationary
    data: every item is out before the span (but the upcoming ones, released on the end
    day without events) and tastes and appeal hold still.
    """
    if not 2 <= n_genres <= len(GENRES):
        raise ValueError(f"n_genres must be in 2..{len(GENRES)}, got {n_genres}")
    if not 0.0 <= drift <= 1.0:
        raise ValueError(f"drift must be in 0..1, got {drift}")
    if not 0.0 <= new_items_share <= 0.5:
        raise ValueError(f"new_items_share must be in 0..0.5, got {new_items_share}")
    if half_life_weeks <= 0:
        raise ValueError(f"half_life_weeks must be positive, got {half_life_weeks}")
    if not 0.0 <= upcoming_share <= 0.5:
        raise ValueError(f"upcoming_share must be in 0..0.5, got {upcoming_share}")
    rng = np.random.default_rng(seed)
    genres = GENRES[:n_genres]
    span_days = weeks * 7
    start_s = int(_utc(end).timestamp()) - span_days * DAY

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
    released = _release_days(n_items, span_days, seed, drift, new_items_share)
    arriving = released >= 0
    release_year = pd.to_datetime(start_s + released * DAY, unit="s").year.to_numpy()
    years = np.where(arriving, release_year, years)
    item_ids = np.array([f"i{j:05d}" for j in range(n_items)])
    titles = [
        f"The {_ADJECTIVES[rng.integers(len(_ADJECTIVES))]} {_NOUNS[rng.integers(len(_NOUNS))]}"
        f" ({years[j]})"
        for j in range(n_items)
    ]
    items = _catalogue(item_ids, titles, years, primary, second, has_second, genres)
    upcoming = _upcoming(n_items, upcoming_share, genres, seed, _utc(end).year)
    catalogue = pd.concat([items, upcoming], ignore_index=True)
    catalogue["description"] = describe_items(
        *genre_indices(catalogue, genres), genres, np.random.default_rng((seed, 2))
    )
    catalogue["image"] = image_paths(catalogue["item_id"])

    # Genre membership matrix (items x genres), secondary genre weighs half.
    membership = np.zeros((n_items, n_genres))
    membership[np.arange(n_items), primary] = 1.0
    membership[np.flatnonzero(has_second), second[has_second]] = 0.5

    # Appeal of each item on each day of the span: its lasting popularity plus a pull
    # right after release that halves every half_life_weeks; nothing before release.
    day_mid = np.arange(span_days)[:, None] + 0.5
    age = day_mid - released[None, :]
    buzz = BUZZ * drift * np.exp2(-np.maximum(age, 0.0) / (7 * half_life_weeks))
    appeal = np.where(age > 0, popularity * (1.0 + buzz), 0.0)

    # Users: sparse taste over genres that moves from a start taste towards an end
    # taste drawn the same way around the genres in fashion at the end (so the genre
    # mix of the whole audience moves too); log-normal activity over a window of the span.
    tastes = rng.dirichlet(np.full(n_genres, 0.15), size=n_users)
    fashion = np.maximum(rng.dirichlet(np.ones(n_genres)), 0.01)
    later = rng.dirichlet(0.15 * n_genres * fashion, size=n_users)
    sigma = 0.8
    mu = np.log(mean_interactions) - sigma**2 / 2
    most = min(n_items // 2, int((released < 0).sum()))  # what is out on the first day
    counts = np.clip(np.round(rng.lognormal(mu, sigma, size=n_users)), 3, most).astype(int)
    first = rng.uniform(0, 0.8, size=n_users)
    owner = np.repeat(np.arange(n_users), counts)
    when = first[owner] + rng.random(len(owner)) * (1.0 - first[owner])
    times = (when * span_days * DAY).astype(np.int64)
    order = np.lexsort((times, owner))
    owner, when, times = owner[order], when[order], times[order]

    chosen, like = draw_items(
        owner, times // DAY, drift * when, tastes, later, membership, appeal, rng
    )
    ratings = np.clip(np.round(1 + 4 * like + rng.normal(0, 0.7, size=len(owner))), 1, 5)
    values = ratings.astype("float64")
    interactions = pd.DataFrame(
        {
            "user_id": pd.array(
                np.array([f"u{u:05d}" for u in range(n_users)])[owner], dtype="str"
            ),
            "item_id": pd.array(item_ids[chosen], dtype="str"),
            "timestamp": pd.to_datetime(start_s + times, unit="s", utc=True),
            "value": values,
            "event_type": pd.array(np.where(values >= 4, "rating", "view"), dtype="str"),
        }
    )
    interactions = interactions.sort_values(["timestamp", "user_id"], kind="stable")
    return interactions.reset_index(drop=True), catalogue


def _catalogue(
    item_ids: np.ndarray,
    titles: list[str],
    years: np.ndarray,
    primary: np.ndarray,
    second: np.ndarray,
    has_second: np.ndarray,
    genres: list[str],
) -> pd.DataFrame:
    """The items table's columns before content: id, title, genres, primary genre, year."""
    return pd.DataFrame(
        {
            "item_id": item_ids,
            "title": titles,
            "genres": [
                genres[p] + (f"|{genres[s]}" if two else "")
                for p, s, two in zip(primary, second, has_second, strict=True)
            ],
            "primary_genre": [genres[g] for g in primary],
            "year": years.astype("int64"),
        }
    ).astype({"item_id": "str", "title": "str", "genres": "str", "primary_genre": "str"})


def _upcoming(n_items: int, share: float, genres: list[str], seed: int, year: int) -> pd.DataFrame:
    """The items released on the end day (ids after the ``n_items`` others), drawn from
    a stream of their own so they leave the rest of the data as it is."""
    rng = np.random.default_rng((seed, 4))
    n = round(share * n_items)
    n_genres = len(genres)
    primary = rng.integers(0, n_genres, size=n)
    has_second = rng.random(n) < 0.25
    second = (primary + rng.integers(1, n_genres, size=n)) % n_genres
    titles = [
        f"The {_ADJECTIVES[rng.integers(len(_ADJECTIVES))]} {_NOUNS[rng.integers(len(_NOUNS))]}"
        f" ({year})"
        for _ in range(n)
    ]
    ids = np.array([f"i{j:05d}" for j in range(n_items, n_items + n)])
    years = np.full(n, year)
    return _catalogue(ids, titles, years, primary, second, has_second, genres)


def demo_releases(
    n_items: int = 1000,
    weeks: int = 8,
    seed: int = 42,
    end: pd.Timestamp | str = "2026-01-01",
    drift: float = 1.0,
    new_items_share: float = 0.15,
    upcoming_share: float = 0.03,
) -> pd.Series:
    """When each item of ``generate_demo`` with the same settings came out (UTC, at
    midnight), by ``item_id``: most over the year before the span, ``new_items_share``
    of them on a day within it (none when ``drift`` is 0), and the upcoming ones
    (``upcoming_share``) on the end day. No event of an item comes before its release."""
    span_days = weeks * 7
    days = _release_days(n_items, span_days, seed, drift, new_items_share)
    days = np.concatenate([days, np.full(round(upcoming_share * n_items), span_days)])
    start = _utc(end) - pd.Timedelta(days=span_days)
    return pd.Series(
        start + pd.to_timedelta(days, unit="D"),
        index=pd.Index([f"i{j:05d}" for j in range(len(days))], dtype="str", name="item_id"),
        name="released",
    )


def _release_days(
    n_items: int, span_days: int, seed: int, drift: float, new_items_share: float
) -> np.ndarray:
    """Release day of each item, counted from the span's first day (negative: before it)."""
    rng = np.random.default_rng((seed, 1))
    arriving = rng.random(n_items) < (new_items_share if drift > 0 else 0.0)
    during = rng.integers(1, span_days, size=n_items)
    before = rng.integers(1, CATALOG_DAYS + 1, size=n_items)
    return np.where(arriving, during, -before)


def _utc(ts: pd.Timestamp | str) -> pd.Timestamp:
    stamp = pd.Timestamp(ts)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


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
