"""How runs are operated: schedules, the intraday refresh, caching, locks, runners."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from tasks.config.section import Section


class ScheduleConfig(Section):
    """When the served deployment runs (``recpipe serve``; see prefect.yaml for ``prefect deploy``).

    ``cron``: five fields, minute hour day month weekday, read in ``timezone`` (IANA name).
    Scheduled runs have no ``run_date``: the flow takes today's date (UTC) when it starts.
    """

    deployment: str = Field("recpipe-nightly", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    cron: str = "0 2 * * *"
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5 or not all(re.fullmatch(r"[0-9*/,\-A-Za-z?]+", f) for f in fields):
            raise ValueError(
                "expected a cron expression with five fields (minute hour day month weekday), "
                "e.g. '0 2 * * *' for 02:00 every day"
            )
        return " ".join(fields)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                "unknown timezone; use an IANA name such as 'UTC' or 'Europe/Paris'"
            ) from exc
        return value


class RefreshConfig(Section):
    """The intraday refresh (``recpipe refresh``, deployment ``recpipe-refresh/<deployment>``
    of ``recpipe serve``): re-score the users with new events in the landing folder ``path``
    (default ``ingest.files.path`` when the source is ``landing``) for the newest published
    run date, every ``interval_minutes`` (or on ``cron`` when set). While the nightly for
    that date runs, a refresh waits up to ``wait_seconds`` behind it
    (``when_nightly_running = "wait"``) or gives up at once and leaves its files for the
    next one (``"skip"``). ``serve``: ``recpipe serve`` also serves the refresh when a
    landing folder is configured.
    """

    path: Path | None = None
    deployment: str = Field("recpipe-refresh", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    interval_minutes: float = Field(5.0, gt=0)
    cron: str | None = None
    when_nightly_running: Literal["wait", "skip"] = "wait"
    wait_seconds: float = Field(600.0, ge=0)
    serve: bool = True

    @field_validator("cron")
    @classmethod
    def _cron_fields(cls, value: str | None) -> str | None:
        return None if value is None else ScheduleConfig._five_fields(value)


class CacheConfig(Section):
    """Skip stages whose inputs are unchanged since they last ran for the same date.

    ``enabled``: ingest, validate and features are skipped when a content hash of their
    inputs, settings and code matches the marker their last run left and their outputs are
    untouched (tasks/storage/cache.py). ``reuse_models`` (on by default): train + evaluate is
    a cached stage too: a model trained and evaluated for the same date from identical
    features, catalog, settings and code (a finished MLflow run) is reused instead of being
    trained again. Off (``--retrain``) trains every model again.
    """

    enabled: bool = True
    reuse_models: bool = True


class LockConfig(Section):
    """One run per date at a time (tasks/storage/locks.py): a second run for a date that is being
    run waits up to ``wait_seconds`` for the first to finish, then fails without writing."""

    wait_seconds: float = Field(0.0, ge=0)


class RunnerConfig(Section):
    """Where the fanned-out tasks (scoring's user shards) run.

    ``local`` (default): in the flow's process, one shard after another. ``dask``: as
    Prefect tasks on Dask (prefect-dask's DaskTaskRunner): on the scheduler at
    ``address`` (e.g. ``tcp://10.0.0.5:8786``) when given, else on a local cluster of
    ``workers`` processes with ``threads_per_worker`` threads each, started for the run.
    Workers must see the workspace at the same path (a shared file system).
    """

    kind: Literal["local", "dask"] = "local"
    address: str | None = None
    workers: int = Field(2, ge=1)
    threads_per_worker: int = Field(1, ge=1)


# The sources load_config layers under the init kwargs: the environment, then the TOML file.
