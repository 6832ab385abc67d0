"""What is published and the checks on it: scoring, the tables, monitoring."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr

from tasks.config.section import Section
from tasks.errors import ConfigError


class ScoreConfig(Section):
    """Who is scored, with which business rules and fallbacks (see tasks/score.py).

    ``shard_rows``: users are scored in shards of about this many interactions
    (tasks/data/shards.py); memory follows the shard, not the number of users, and shards are
    the units a Dask task runner spreads over its workers. ``threads``: blocks of
    ``batch_users`` users scored at once within a shard (0: as many as the CPUs the process
    may use; on Dask, set it to the worker's threads' share). ``name_friends``: how many
    friends a ``social`` row's reason names by id ("liked by 3 of your friends: u12,
    u44"); ids are personal data, so the default 0 gives counts only.
    ``new_items_share``: the share of each list (its last rows, at least one) given to
    catalogue items nobody has interacted with yet, ranked by a content-aware model
    (tasks/scoring/new_items.py); 0 turns it off.
    """

    k: int = Field(10, ge=1)
    new_items_share: float = Field(0.2, ge=0, lt=1)
    batch_users: int = Field(1024, ge=1)
    threads: int = Field(0, ge=0)
    shard_rows: int = Field(1_000_000, ge=1)
    active_days: int | None = Field(None, ge=1)
    min_history: int = Field(1, ge=1)
    deny_items: list[str] = Field([])
    deny_list_path: Path | None = None
    respect_available: bool = True
    max_per_genre: int | None = Field(None, ge=1)
    popular_days: int = Field(30, ge=1)
    explain: bool = True
    name_friends: int = Field(0, ge=0, le=10)
    similar_k: int = Field(10, ge=1)
    neighbours: int = Field(50, ge=1)
    shrinkage: float = Field(10.0, ge=0)


class PublishConfig(Section):
    """Where the tables go: lake tables (Delta Lake) in the workspace and a database
    (SQLite by default). ``lake_retention_hours``: how long replaced lake versions stay
    readable (time travel, ``recpipe recs rollback``) before they are vacuumed.

    ``database_url`` is a secret: it is masked in every repr, dump, log, MLflow param and
    Prefect parameter. Its password can instead come from a file
    (``database_password_file``, first line) or an environment variable
    (``database_password_env`` names it), or from libpq's own ``PGPASSWORD`` /
    ``PGPASSFILE`` when the URL has none.
    """

    table: str = Field("recommendations", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    similar_table: str = Field("similar_items", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    database_url: SecretStr | None = None
    database_password_file: Path | None = None
    database_password_env: str | None = None
    keep_runs: int = Field(7, ge=1)
    validate_output: bool = True
    lake_retention_hours: float = Field(168.0, ge=0)

    def url(self, default: str) -> str:
        """The URL to connect with (``default``, the workspace's SQLite file, when none is
        set), with the password from the file or variable filled in."""
        if self.database_url is None:
            return default
        from sqlalchemy.engine import make_url

        url = make_url(self.database_url.get_secret_value())
        password = None
        if self.database_password_file is not None:
            try:
                lines = Path(self.database_password_file).expanduser().read_text().splitlines()
            except OSError as exc:
                raise ConfigError(
                    f"publish.database_password_file {self.database_password_file}: cannot be "
                    f"read ({exc.strerror}); expected a file whose first line is the password"
                ) from None
            password = lines[0] if lines else ""
        elif self.database_password_env:
            password = os.environ.get(self.database_password_env)
            if password is None:
                raise ConfigError(
                    f"publish.database_password_env names {self.database_password_env!r}, "
                    "which is not set; export it, or drop the setting"
                )
        if password is not None:
            url = url.set(password=password)
        return url.render_as_string(hide_password=False)

    def masked_url(self, default: str) -> str:
        """The URL as it may be printed or logged: the password replaced by ``***``."""
        from sqlalchemy.engine import make_url

        if self.database_url is None:
            return default
        return make_url(self.database_url.get_secret_value()).render_as_string(hide_password=True)


class MonitorConfig(Section):
    """Thresholds on tonight's recommendations, checked before publishing (tasks/monitor.py).

    Drift compares with the previous run date's published partition: ``*_jaccard`` bounds
    the mean Jaccard similarity of users' top-K lists, ``*_top1_changed`` the share of users
    whose first item changed. ``*_coverage`` bounds the share of the catalog recommended to
    someone, ``*_gini`` the concentration of recommendations on few items (0 even, 1 one
    item). ``*_data_age_days`` bounds how many days the newest event is older than the run
    date (stale data; ``validate.max_event_age_days`` can also stop the run at validation).
    A ``warn_*`` threshold crossed logs a warning and the run publishes; a ``fail_*``
    threshold crossed fails the run before publishing, so the previous tables keep serving.
    ``None`` switches a check off.

    The warnings are on by default, at levels a real catalog should not reach: fewer than
    5% of the catalog's items recommended to anyone (a popularity list gives about K /
    catalog size), a Gini above 0.95 (nearly every slot on a few items), a mean Jaccard
    under 0.1 or more than 90% of users with a new first item against the previous night
    (expected when the champion changes, worth a look otherwise), and a newest event more
    than 7 days before the run date.
    """

    warn_min_jaccard: float | None = Field(0.1, ge=0, le=1)
    fail_min_jaccard: float | None = Field(None, ge=0, le=1)
    warn_max_top1_changed: float | None = Field(0.9, ge=0, le=1)
    fail_max_top1_changed: float | None = Field(None, ge=0, le=1)
    warn_min_coverage: float | None = Field(0.05, ge=0, le=1)
    fail_min_coverage: float | None = Field(None, ge=0, le=1)
    warn_max_gini: float | None = Field(0.95, ge=0, le=1)
    fail_max_gini: float | None = Field(None, ge=0, le=1)
    warn_max_data_age_days: float | None = Field(7, ge=0)
    fail_max_data_age_days: float | None = Field(None, ge=0)
