"""A refresh's events: the landing folder's new files, validated, kept as batches.

Where new files are recorded (:func:`source_for`):

* the nightly reads the same landing folder (source ``landing``): the refresh ingests
  into the nightly's own landing store (``<workspace>/raw``, one manifest), in the
  partition of the next nightly (``ingest_date`` = the day after the published date, or
  today if later), so that night reads the events as its own and no file is read twice;
* otherwise (a ``demo``, ``files`` or MovieLens nightly): a store of the refresh's own,
  ``<workspace>/refresh/landing``, with the same manifest rules.

The accepted rows of each refresh are one batch file,
``<workspace>/refresh/run_date=D/accepted/<name>.parquet`` (its quarantine beside it in
``quarantine/``); ``published.json`` lists the batches whose users' rows were published.
A refresh re-scores the users of every batch not yet published (its own, and those of a
refresh that failed before publishing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.errors import ConfigError
from tasks.storage.shared_files import replace_atomically, write_json

HISTORY_COLUMNS = ["user_id", "item_id", "timestamp"]
PUBLISHED = "published.json"


@dataclass(frozen=True)
class Source:
    """Where a refresh reads new files and records them."""

    landing: Path  # the folder of drops
    partition: Path  # the landing-store partition this refresh appends to
    ingest_date: date
    shared: bool  # the nightly's own landing store: its next run reads these events


def source_for(config: Any, root: Path, run_date: date, today: date) -> Source:
    """The landing folder and store of a refresh of ``run_date`` (see the module docstring)."""
    files = config.ingest.files
    nightly_folder = files.path if config.ingest.source == "landing" else None
    folder = config.refresh.path or nightly_folder
    if folder is None:
        raise ConfigError(
            "refresh: no landing folder to read new events from; expected refresh.path (or "
            f"ingest.files.path with source 'landing'), found source {config.ingest.source!r} "
            "and no refresh.path; set [refresh] path = '<folder>' or pass --path"
        )
    folder = Path(folder).expanduser().resolve()
    shared = nightly_folder is not None and Path(nightly_folder).expanduser().resolve() == folder
    if shared:
        ingest_date = max(run_date + timedelta(days=1), today)
        store = root / "raw"
    else:
        ingest_date = today
        store = root / "refresh" / "landing"
    return Source(folder, store / f"ingest_date={ingest_date.isoformat()}", ingest_date, shared)


def read_new_events(config: Any, source: Source) -> tuple[pd.DataFrame, dict]:
    """The events of the landing folder's new files (tasks/sources/landing.py: each file
    once, events already stored dropped) and the ingest stats, with ``newest_arrival``: the
    newest modification time (epoch seconds) of the files read."""
    from tasks.sources.landing import ingest_landing

    files = config.ingest.files.model_copy(update={"path": source.landing})
    partition, stats = ingest_landing(files, source.partition, source.ingest_date)
    # ingest_landing returns the whole partition, this run's new rows last.
    events = partition.iloc[len(partition) - stats["rows_new"] :].reset_index(drop=True)
    arrivals = []
    for name in stats["files_ingested"]:
        try:
            arrivals.append((source.landing / name).stat().st_mtime)
        except FileNotFoundError:
            continue
    stats["newest_arrival"] = max(arrivals) if arrivals else None
    return events, stats


def validate_events(
    events: pd.DataFrame,
    config: Any,
    gx_root: Path,
    items_path: Path | None,
    batch_dir: Path,
    name: str,
    now: pd.Timestamp | None = None,
    runner: Any = None,
) -> dict:
    """The nightly's suites on the new events (tasks/validation/checks.py): bad rows go to
    the quarantine with their reason, a bad batch stops the refresh (DataValidationError)
    before anything is published. ``now``: the time the future and age checks measure
    from; by default the moment the refresh runs (it handles events as they arrive, not
    as of a past date). Writes the batch (``accepted/<name>.parquet``) and its
    quarantine. No volume check: a refresh batch is small by nature. ``runner``: the
    refresh's ``SuiteRunner`` (its Data Docs are built once, after publishing)."""
    from tasks.errors import DataValidationError
    from tasks.validation.checks import validate_interactions

    empty = {"rows_read": 0, "rows_accepted": 0, "rows_quarantined": 0, "duplicates_dropped": 0}
    if events.empty:
        return {**empty, "accounting": "no new events", "batch": None}
    items = pd.read_parquet(items_path) if items_path is not None else None
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    try:
        result = validate_interactions(
            events,
            gx_root=gx_root,
            config=config,
            now=now,
            items=items,
            run_name=f"refresh-{name}",
            runner=runner,
        )
    except DataValidationError as exc:
        if runner is None:
            raise
        docs = runner.finish()  # the pages the message points to
        raise DataValidationError(
            str(exc).replace("Data Docs: None", f"Data Docs: {docs}")
        ) from exc
    accepted = batch_dir / "accepted" / f"{name}.parquet"
    quarantine = batch_dir / "quarantine" / f"{name}.parquet"
    for path, frame in ((quarantine, result.quarantined), (accepted, result.accepted)):
        path.parent.mkdir(parents=True, exist_ok=True)

        def write(tmp: Path, frame: Any = frame) -> object:
            return frame.to_parquet(tmp, index=False)

        replace_atomically(path, write)
    return {
        "rows_read": result.rows_read,
        "rows_accepted": result.rows_accepted,
        "rows_quarantined": result.rows_quarantined,
        "duplicates_dropped": result.duplicates_dropped,
        "accounting": result.accounting,
        "quarantine_reasons": dict(result.reasons),
        "batch": str(accepted),
    }


# -- batches -------------------------------------------------------------------------------
def batches(batch_dir: Path) -> list[Path]:
    """Every batch of the run date, oldest first (names start with a UTC time)."""
    return sorted((batch_dir / "accepted").glob("*.parquet"))


def published_batches(batch_dir: Path) -> set[str]:
    path = batch_dir / PUBLISHED
    if not path.is_file():
        return set()
    return set(json.loads(path.read_text(encoding="utf-8")).get("batches", []))


def pending_batches(batch_dir: Path) -> list[Path]:
    done = published_batches(batch_dir)
    return [p for p in batches(batch_dir) if p.name not in done]


def mark_published(batch_dir: Path, paths: list[Path]) -> None:
    names = sorted(published_batches(batch_dir) | {p.name for p in paths})
    write_json({"batches": names}, batch_dir / PUBLISHED)


def batch_users(paths: list[Path]) -> list[str]:
    """The users of ``paths``, in order of first appearance."""
    if not paths:
        return []
    frames = [pd.read_parquet(p, columns=["user_id"]) for p in paths]
    users = pd.concat(frames, ignore_index=True)["user_id"].astype(str)
    return list(dict.fromkeys(users))


def known_users(validated_path: Path, batch_paths: list[Path]) -> pd.Series:
    """Every user of the night's validated interactions and of ``batch_paths``."""
    parts = [pd.read_parquet(p, columns=["user_id"]) for p in [validated_path, *batch_paths]]
    return pd.Series(pd.unique(pd.concat(parts, ignore_index=True)["user_id"].astype(str)))


def histories(validated_path: Path, batch_paths: list[Path], users: list[str]) -> pd.DataFrame:
    """The whole history of ``users``: the night's validated rows, then every batch's rows
    (the nightly's order: its store first, later events after)."""
    import pyarrow.parquet as pq

    wanted = set(users)
    old = pq.read_table(
        validated_path, columns=HISTORY_COLUMNS, filters=[("user_id", "in", list(wanted))]
    ).to_pandas()
    parts = [old]
    for path in batch_paths:
        frame = pd.read_parquet(path, columns=HISTORY_COLUMNS)
        parts.append(frame[frame["user_id"].astype(str).isin(wanted)])
    out = pd.concat([p for p in parts if len(p)] or [old], ignore_index=True)
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True)
    return out
