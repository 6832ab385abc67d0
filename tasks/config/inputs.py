"""Where the interactions come from (ingest) and what they must satisfy (validate)."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from tasks.config.section import Section
from tasks.sources.names import SourceName


class DemoConfig(Section):
    """Size and shape of the synthetic demo dataset. ``drift`` (0..1): how far tastes
    and item appeal move over the weeks (0: they hold still); ``new_items_share``: the
    items released during the weeks; ``half_life_weeks``: how fast a release's pull
    fades; ``upcoming_share``: items announced on the run date (a share of ``n_items``,
    with a description and a picture and no interactions yet: the night's new items).
    ``mean_friends``: friendships per user in its graph of relations (homophily:
    friends tend to share a taste; 0: no graph); ``newcomers``: users with friends and
    no interactions. An ``ingest.social.path`` replaces the demo's graph."""

    n_users: int = Field(2000, ge=10)
    n_items: int = Field(1000, ge=20)
    n_genres: int = Field(10, ge=2, le=18)
    mean_interactions: float = Field(40.0, gt=1)
    weeks: int = Field(8, ge=2)
    seed: int = 42
    drift: float = Field(1.0, ge=0, le=1)
    new_items_share: float = Field(0.15, ge=0, le=0.5)
    half_life_weeks: float = Field(2.0, gt=0)
    upcoming_share: float = Field(0.03, ge=0, le=0.5)
    mean_friends: float = Field(6.0, ge=0)
    newcomers: int = Field(10, ge=0)


class MovieLensConfig(Section):
    """Where a MovieLens dataset comes from and how its archive is checked.

    ``path`` (a local ``.zip`` or its extracted folder) wins over downloading. Downloads
    come from ``base_url`` and are cached under ``cache_dir`` (default
    ``<workspace>/cache/movielens``). An archive is checked against ``sha256`` when given,
    else against the checksums recorded in ``tasks/sources/movielens.py``; a download with
    no known checksum is refused unless ``verify`` is false.
    """

    path: Path | None = None
    base_url: str = "https://files.grouplens.org/datasets/movielens"
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    verify: bool = True
    cache_dir: Path | None = None
    timeout_seconds: float = Field(120.0, gt=0)


class FilesConfig(Section):
    """The user's own CSV/Parquet files (source "files") or daily drops (source "landing").

    Column names map the file's columns onto the contract. ``timestamp_col = "none"``
    says the data has no time (e.g. check-in counts): each event is then stamped with
    the start of the day it was ingested, and the night holds out a random share of each
    user's events instead of the latest ones (tasks/data/holdout.py). ``value_col`` and
    ``event_type_col`` left unset take a column named ``value`` / ``event_type`` when the
    file has one; set explicitly, the column must exist. ``delimiter`` unset: a tab for
    ``.tsv`` files, a comma for the rest. ``items_path``: an optional item catalog file.
    """

    path: Path | None = None
    user_col: str = Field("user_id", min_length=1)
    item_col: str = Field("item_id", min_length=1)
    timestamp_col: str | None = Field("timestamp", min_length=1)
    value_col: str | None = None
    event_type_col: str | None = None
    timestamp_unit: Literal["auto", "s", "ms", "iso", "mixed"] = "auto"
    delimiter: str | None = Field(None, min_length=1, max_length=1)
    encoding: str = "utf-8"
    items_path: Path | None = None

    @field_validator("timestamp_col", mode="before")
    @classmethod
    def _no_time(cls, value: object) -> object:
        """``"none"`` (any case) or an empty name: the data has no timestamp column."""
        if isinstance(value, str) and value.strip().lower() in ("", "none"):
            return None
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        return known_encoding(value)

    @property
    def timed(self) -> bool:
        """Whether the events carry a time (a timestamp column is mapped)."""
        return self.timestamp_col is not None


def known_encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError as exc:
        raise ValueError(f"unknown text encoding; use e.g. 'utf-8' or 'latin-1' ({exc})") from exc
    return value


class SocialConfig(Section):
    """Relations between users (friends, follows, trust): a CSV/Parquet file or a folder of
    them (gzip allowed), read whole every run, whatever the interactions' source.

    ``user_col`` names who holds the relation, ``friend_col`` the user it points to,
    ``weight_col`` (optional) its strength (1.0 without one). ``direction``: ``mutual``
    (friendships: each edge holds both ways, one line per pair is enough) or ``follows``
    (the user follows / trusts the friend, not the other way round). ``delimiter`` and
    ``encoding`` as for the interaction files.
    """

    path: Path | None = None
    user_col: str = Field("user_id", min_length=1)
    friend_col: str = Field("friend_id", min_length=1)
    weight_col: str | None = None
    direction: Literal["mutual", "follows"] = "mutual"
    delimiter: str | None = Field(None, min_length=1, max_length=1)
    encoding: str = "utf-8"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        return known_encoding(value)


class IngestConfig(Section):
    source: SourceName = "demo"
    demo: DemoConfig = DemoConfig()
    movielens: MovieLensConfig = MovieLensConfig()
    files: FilesConfig = FilesConfig()
    social: SocialConfig = SocialConfig()


class ValidateConfig(Section):
    """Thresholds for the interactions, items and users suites.

    ``None`` switches a check off: ``max_event_age_days`` (stale data) is off by default
    because the demo and MovieLens sources are historical; set it for live data.
    ``part_rows``: a batch of more interactions than this is validated in user partitions
    of about this many rows (tasks/validation/partitions.py), so memory follows the
    partition, not the batch.
    """

    value_min: float = 0.0
    value_max: float = 5.0
    min_timestamp: str = "1995-01-01T00:00:00Z"
    future_tolerance_hours: float = Field(24.0, ge=0)
    min_rows: int = Field(1, ge=1)
    max_quarantine_share: float = Field(0.05, ge=0, le=1)
    max_id_length: int = Field(256, ge=1)
    max_events_per_user: int | None = Field(20_000, ge=1)
    max_event_age_days: float | None = Field(None, gt=0)
    max_volume_drop: float | None = Field(0.5, ge=0, le=1)
    volume_window: int = Field(7, ge=1)
    volume_min_runs: int = Field(3, ge=1)
    item_year_min: int = 1870
    # the relations between users (expectations/edges.py): a larger share of edges
    # quarantined as bad (missing ids, self-loops, weights out of range) stops the night
    max_edge_quarantine_share: float = Field(0.05, ge=0, le=1)
    part_rows: int = Field(2_000_000, ge=1)
