"""MovieLens (GroupLens): download, verify, cache and read into the contract tables.

Sources ``movielens-100k``, ``-1m``, ``-20m`` and ``-latest-small`` read the official
archive ``https://files.grouplens.org/datasets/movielens/<name>.zip``, cached as
``<cache_dir>/<name>.zip``, or a local copy (``MovieLensConfig.path``: the zip or the
extracted folder).

Checksums and downloads: ``tasks/sources/movielens_archive.py``. Every input is verified or
explicitly accepted unverified (``--no-verify``), never skipped quietly.

Tables: interactions (user_id, item_id, timestamp UTC, value = rating, event_type
"rating"), items (item_id, title, genres "A|B", year, metadata_missing) and, where the
release has them, users (user_id, age, gender, occupation, zip). ML-100K item 267 is a
placeholder ("unknown", no release date): it is kept with ``metadata_missing`` true and
null title, and its interactions are kept; the stats say so.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tasks.config import MovieLensConfig
from tasks.sources.movielens_archive import (
    RELEASES,
    DownloadError,
    Release,
    ReleaseCopy,
    locate_archive,
    verify_members,
)

__all__ = ["RELEASES", "DownloadError", "MovieLensData", "load_movielens"]


@dataclass(frozen=True)
class MovieLensData:
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None
    stats: dict


def load_movielens(source: str, config: MovieLensConfig, cache_dir: Path) -> MovieLensData:
    """Locate, verify and read a MovieLens release into the contract tables."""
    release = RELEASES[source]
    path, verification = locate_archive(source, config, cache_dir)
    copy = ReleaseCopy(path, release)
    readers: dict[str, Callable[[ReleaseCopy], tuple]] = {"100k": _read_100k, "1m": _read_1m}
    try:
        verify_members(copy, verification)
        interactions, items, users = readers.get(release.layout, _read_csv_release)(copy)
    finally:
        copy.close()
    return MovieLensData(
        interactions, items, users, _stats(release, verification, interactions, items)
    )


def _stats(
    release: Release, verification: str, interactions: pd.DataFrame, items: pd.DataFrame
) -> dict:
    missing = items.loc[items["metadata_missing"], "item_id"].tolist()
    affected = int(interactions["item_id"].isin(missing).sum())
    notes = []
    if missing:
        notes.append(
            f"{len(missing)} item(s) without title or release date ({', '.join(missing[:10])}): "
            f"kept with metadata_missing=true; their {affected} interactions are kept"
        )
    return {
        "dataset": release.name,
        "checksum": verification,
        "timestamp_unit": "s",
        "items_metadata_missing": missing,
        "interactions_on_items_metadata_missing": affected,
        "notes": notes,
    }


def _interactions(users, items, ratings, seconds) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.array(users, dtype="str"),
            "item_id": pd.array(items, dtype="str"),
            "timestamp": pd.to_datetime(seconds.astype("int64"), unit="s", utc=True),
            "value": ratings.astype("float64"),
            "event_type": pd.array(["rating"] * len(users), dtype="str"),
        }
    )


def _items(ids, titles, genres, years) -> pd.DataFrame:
    items = pd.DataFrame(
        {
            "item_id": pd.array(ids, dtype="str"),
            "title": pd.array(titles, dtype="str"),
            "genres": pd.array(genres, dtype="str"),
            "year": pd.array(years, dtype="Int64"),
        }
    )
    placeholder = items["title"].isna() | items["title"].str.strip().str.lower().eq("unknown")
    items["metadata_missing"] = (placeholder | items["year"].isna()).to_numpy(dtype=bool)
    items.loc[placeholder, "title"] = pd.NA
    return items


def _title_year(titles: pd.Series) -> pd.Series:
    return pd.to_numeric(titles.str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce")


def _read_100k(copy: ReleaseCopy) -> tuple:
    with copy.open("u.data") as handle:
        data = pd.read_csv(handle, sep="\t", header=None, dtype="str")
    with copy.open("u.genre") as handle:
        genre_table = pd.read_csv(handle, sep="|", header=None, encoding="latin-1", dtype="str")
    genre_names = genre_table.dropna()[0].tolist()
    with copy.open("u.item") as handle:
        raw = pd.read_csv(handle, sep="|", header=None, encoding="latin-1", dtype="str")
    flags = raw.iloc[:, 5 : 5 + len(genre_names)].astype("int64").to_numpy()
    genres = [
        "|".join(g for g, f in zip(genre_names, row, strict=True) if f and g != "unknown") or None
        for row in flags
    ]
    released = pd.to_datetime(raw[2], format="%d-%b-%Y", errors="coerce")
    items = _items(raw[0], raw[1], genres, released.dt.year)
    with copy.open("u.user") as handle:
        u = pd.read_csv(handle, sep="|", header=None, dtype="str")
    users = pd.DataFrame(
        {
            "user_id": u[0],
            "age": pd.to_numeric(u[1], errors="coerce").astype("Int64"),
            "gender": u[2],
            "occupation": u[3],
            "zip": u[4],
        }
    )
    ratings = _interactions(data[0], data[1], data[2].astype(float), data[3].astype("int64"))
    return ratings, items, users


def _read_dat(copy: ReleaseCopy, member: str, names: list[str]) -> pd.DataFrame:
    """ML-1M ``::``-separated files (ISO-8859-1)."""
    with copy.open(member) as handle:
        text = handle.read().decode("latin-1").replace("::", "\t")
    return pd.read_csv(io.StringIO(text), sep="\t", header=None, names=names, dtype="str")


def _read_1m(copy: ReleaseCopy) -> tuple:
    data = _read_dat(copy, "ratings.dat", ["user", "item", "rating", "ts"])
    movies = _read_dat(copy, "movies.dat", ["item", "title", "genres"])
    u = _read_dat(copy, "users.dat", ["user", "gender", "age", "occupation", "zip"])
    items = _items(movies["item"], movies["title"], movies["genres"], _title_year(movies["title"]))
    # ML-1M codes age as the lower bound of a bracket (1 = under 18) and occupation as 0-20.
    users = u.rename(columns={"user": "user_id"})[["user_id", "age", "gender", "occupation", "zip"]]
    users = users.assign(age=pd.to_numeric(users["age"], errors="coerce").astype("Int64"))
    ratings = _interactions(data["user"], data["item"], data["rating"].astype(float), data["ts"])
    return ratings, items, users


def _read_csv_release(copy: ReleaseCopy) -> tuple:
    with copy.open("ratings.csv") as handle:
        data = pd.read_csv(
            handle,
            dtype={"userId": "str", "movieId": "str", "rating": "float64", "timestamp": "int64"},
        )
    with copy.open("movies.csv") as handle:
        movies = pd.read_csv(handle, dtype="str")
    genres = movies["genres"].where(movies["genres"] != "(no genres listed)")
    items = _items(movies["movieId"], movies["title"], genres, _title_year(movies["title"]))
    ratings = _interactions(data["userId"], data["movieId"], data["rating"], data["timestamp"])
    return ratings, items, None
