"""As of a date: a backfilled run sees only the events it would have seen that night.

A run for ``run_date`` D with ``as_of`` keeps the events with a timestamp before the day
after D (``D + 1 day, 00:00 UTC``). The demo generator already ends at D; the "files" and
MovieLens sources read their whole history every run, so the raw Parquet that ingest
wrote for D (``raw/ingest_date=D/interactions.parquet``, a full snapshot of the source)
is filtered in place. Rows whose timestamp did not parse are kept for validation to
quarantine with its reason.

The "landing" source cannot be read as of a past date: each dropped file is ingested
once, into the partition of the night it arrived, and later runs build on the previous
snapshot; ``check_source`` refuses it with what to do instead.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.errors import ConfigError
from tasks.storage.shared_files import replace_atomically


def cutoff(run_date: date) -> pd.Timestamp:
    """The first instant a run for ``run_date`` must not see."""
    return pd.Timestamp(run_date + timedelta(days=1), tz="UTC")


def check_source(source: str) -> None:
    if source == "landing":
        raise ConfigError(
            "backfill (as-of runs) needs a source that can be re-read as of a past date; "
            "got source 'landing', which ingests each dropped file once, into the night it "
            "arrived; backfill from the same folder with '--source files --path <landing "
            "folder>' (every file is read whole and filtered to each date), or run the "
            "missed nights with 'recpipe run --run-date D' in date order"
        )


def filter_as_of(frame: pd.DataFrame, run_date: date) -> pd.DataFrame:
    """The rows before ``cutoff(run_date)``, plus rows without a parsed timestamp."""
    stamps = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce")
    keep = stamps.isna() | (stamps < cutoff(run_date))
    return frame[keep.to_numpy()].reset_index(drop=True)


def as_of(interactions_path: str, run_date: date) -> dict:
    """Filter the raw interactions of the run in place (atomically); return the counts."""
    path = Path(interactions_path)
    frame = pd.read_parquet(path)
    kept = filter_as_of(frame, run_date)
    if len(kept) < len(frame):  # the run's own file (its date's lock): a unique temp suffices
        replace_atomically(path, lambda tmp: kept.to_parquet(tmp, index=False))
    return {
        "cutoff": cutoff(run_date).isoformat(),
        "rows_before": len(frame),
        "rows_after": len(kept),
        "rows_dropped": len(frame) - len(kept),
    }


as_of_task = task(name="as-of", cache_policy=NO_CACHE)(as_of)
