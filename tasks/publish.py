"""Publish: a run's tables, in the database and in the lake, with one commit point.

Tables: ``recommendations`` (the product's output, see the README) and ``similar_items``
(item pages), each in two stores: a database (SQLite in the workspace by default, any
SQLAlchemy URL, e.g. PostgreSQL) and a Delta Lake table under ``<workspace>/tables``.

A publish (:func:`publish_night`) goes:

1. the journal records the intent, and the run's files are linked into
   ``<workspace>/publish/<publish id>/`` (a later run of the date cannot overwrite them);
2. the rows are loaded into staging tables named for this publish;
3. ONE database transaction swaps every table's run date and logs the publish:
   **the commit point**. Before it nothing is visible; after it the publish is
   decided and everything that follows is redone until it is finished;
4. each lake table gets its date in one Delta commit;
5. the journal says ``done``; then the side effects: the ``champion`` alias moves (only
   for a run date not older than the newest published one), staging is cleaned up and
   lake files older than the retention are vacuumed.

A process killed anywhere leaves a journal record that is not ``done``. Every run (and
``recpipe doctor``) calls :func:`recover` first: forward for a publish whose database
transaction committed (finish the lake and the alias from the linked files), back for
one whose transaction did not (drop its staging tables and files). Publishes of a date
that another process is running right now (it holds the date's run lock) are left to
that process.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.errors import PublishError
from tasks.storage import database as db
from tasks.storage import journal, lake
from tasks.storage.cache import StageResult
from tasks.storage.faults import checkpoint
from tasks.storage.parquet import parquet_rows

log = logging.getLogger(__name__)

RECOMMENDATIONS = "recommendations"
SIMILAR_ITEMS = "similar_items"


@dataclass(frozen=True)
class Output:
    """One table of a run: its name, kind and the Parquet file (or folder) of its rows."""

    name: str
    kind: str
    source: Path


@dataclass(frozen=True)
class ChampionMove:
    """The alias change a run's promotion decided; made once its tables commit."""

    registered_name: str
    version: str
    reason: str


@dataclass(frozen=True)
class Stores:
    """Where a workspace publishes: its root (journal, staged files, lake tables) and
    the database URL."""

    root: Path
    database_url: str

    @property
    def journal(self) -> Path:
        return self.root / "journal"

    @property
    def staged(self) -> Path:
        return self.root / "publish"

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    def lake(self, name: str) -> Path:
        return self.tables / name

    def rel(self, path: Path) -> str:
        return os.path.relpath(path, self.root)


# -- staging ------------------------------------------------------------------------------
def _link_or_copy(source: Path, dest: Path) -> None:
    """A hard link (instant, and immune to the source being replaced), else a copy."""
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def _check_writable(stores: Stores, outputs: list[Output]) -> None:
    """Refuse before the commit point when a folder the publish writes is not writable (a
    read-only mount, a permission): the database would commit and the lake could not
    follow. Raises the ``OSError`` naming the folder."""
    folders = [stores.journal, stores.staged]
    for out in outputs:
        folders += [stores.lake(out.name), stores.lake(out.name) / "_delta_log"]
    for folder in folders:
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        try:
            handle, probe = tempfile.mkstemp(dir=existing, prefix=".recpipe-probe-")
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(existing)) from exc
        os.close(handle)
        os.unlink(probe)


def _stage_files(stores: Stores, pid: str, outputs: list[Output]) -> list[dict]:
    folder = stores.staged / pid
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    staged = []
    for out in outputs:
        files = lake.parquet_files(out.source)
        dest = folder / out.name
        dest.mkdir()
        for n, path in enumerate(files):
            _link_or_copy(path, dest / f"part-{n:05d}.parquet")
        rows = sum(parquet_rows(p) for p in files)
        staged.append(
            {"name": out.name, "kind": out.kind, "staged": stores.rel(dest), "rows": rows}
        )
    return staged


def _frames(
    source: Path, stamp: str | None, refreshed_at: datetime | None = None
) -> Iterator[pd.DataFrame]:
    for batch in lake.iter_batches(source):
        frame = lake.with_refreshed_at(pa.Table.from_batches([batch]), refreshed_at).to_pandas()
        if stamp is not None:
            frame["run_id"] = stamp
        yield frame


def _refreshed_at(record: dict, kind: str) -> datetime | None:
    """When the rows of a recommendations table were published: the publish's intent (the
    same instant in both stores, also when recovery finishes it later)."""
    stamp = record.get("refreshed_at")
    return datetime.fromisoformat(stamp) if stamp and kind == RECOMMENDATIONS else None


# -- the publish --------------------------------------------------------------------------
def publish_night(
    stores: Stores,
    run_id: str,
    run_date: date,
    outputs: list[Output],
    keep_runs: int | None = None,
    champion: ChampionMove | None = None,
    source_run_id: str | None = None,
    retention_hours: float = 168.0,
    stamp: bool = True,
) -> dict:
    """Publish ``outputs`` for ``run_date`` to both stores (see the module docstring).

    Idempotent per ``(run_date, run_id)``: called again after a failure (a task retry),
    it finishes the same publish instead of starting another. ``stamp``: the rows'
    ``run_id`` becomes ``run_id`` (the run that publishes them, also when its scores were
    reused from an earlier run of the date); off for a rollback, whose rows keep theirs.
    """
    pid = journal.publish_id(run_date, run_id)
    path = journal.path_for(stores.journal, pid)
    record = journal.read(path) if path.exists() else None
    if record is not None and record["state"] == "done":
        return _summary(stores, record)
    if record is None or record["state"] == "rolled_back":
        _check_writable(stores, outputs)
    engine = db.make_engine(stores.database_url)
    try:
        if record is None or record["state"] == "rolled_back":
            record = {
                "publish_id": pid,
                "run_id": run_id,
                "source_run_id": source_run_id or run_id,
                "run_date": run_date.isoformat(),
                "database": journal.database_digest(stores.database_url),
                "keep_runs": keep_runs,
                "retention_hours": retention_hours,
                "stamp": run_id if stamp else None,
                "champion": asdict(champion) if champion else None,
                "created_at": journal.now(),
                "refreshed_at": journal.now(),
                "lake_versions": {},
                "tables": _stage_files(stores, pid, outputs),
            }
            record = journal.advance(stores.journal, record, "intent")
            checkpoint("publish:intent")
        if record["state"] == "intent":
            record = _commit_database(stores, engine, record)
        return _roll_forward(stores, engine, record)
    except PublishError:
        raise
    except Exception as exc:
        raise PublishError(
            f"publishing {[o.name for o in outputs]} for {run_date} to "
            f"{engine.url.render_as_string(hide_password=True)} failed: "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}; "
            + _state_advice(stores, engine, pid, [(o.name, o.kind) for o in outputs])
        ) from exc
    finally:
        engine.dispose()


def _state_advice(stores: Stores, engine: Any, pid: str, pairs: list[tuple[str, str]]) -> str:
    path = journal.path_for(stores.journal, pid)
    if path.exists() and journal.read(path)["state"] == "rolled_back":
        return (
            "nothing was published and the previous tables still serve; fix the database "
            "and re-run the same date"
        )
    try:
        committed = db.is_committed(engine, pid, pairs)
    except Exception:  # noqa: BLE001 - the database is what failed; say what we know
        return (
            "the database could not say whether the swap committed; the next run (or "
            "'recpipe doctor') finishes or undoes it from the journal"
        )
    if committed:
        return (
            "the database has the new rows and the lake follows them on the next run or "
            "'recpipe doctor'"
        )
    _roll_back_quietly(stores, engine, pid)
    return "nothing was published and the previous tables still serve; fix the database and re-run the same date"


def _commit_database(stores: Stores, engine: Any, record: dict) -> dict:
    run_date = date.fromisoformat(record["run_date"])
    pid = record["publish_id"]
    pairs = [(t["name"], t["kind"]) for t in record["tables"]]
    swapping = False
    try:
        db.prepare_tables(engine, pairs)
        for table in record["tables"]:
            source = stores.root / table["staged"]
            frames = _frames(source, record.get("stamp"), _refreshed_at(record, table["kind"]))
            db.stage_rows(engine, table["name"], table["kind"], pid, frames, run_date)
        checkpoint("publish:database-staged")
        swapping = True
        dropped = db.commit_rows(
            engine,
            pairs,
            run_date,
            pid,
            record["source_run_id"],
            record["keep_runs"],
            before_commit=lambda: checkpoint("publish:database-commit"),
        )
    except Exception:
        committed = False
        if swapping:  # the commit may have landed before the error: ask
            try:
                committed = db.is_committed(engine, pid, pairs)
            except Exception:  # noqa: BLE001 - the database failed; the next recovery decides
                committed = True
        if not committed:
            _roll_back_quietly(stores, engine, pid)
        raise
    checkpoint("publish:database-committed")
    return journal.advance(stores.journal, record, "database", database_dropped=dropped)


def _roll_forward(stores: Stores, engine: Any, record: dict) -> dict:
    """From a committed database transaction to ``done``: the lake tables, the alias,
    then cleanup. Every step checks whether it happened already."""
    run_date = date.fromisoformat(record["run_date"])
    pid = record["publish_id"]
    versions = dict(record.get("lake_versions") or {})
    for table in record["tables"]:
        name = table["name"]
        if name in versions:
            continue
        source = stores.root / table["staged"]
        if not lake.is_committed(stores.lake(name), pid) and not source.exists():
            raise PublishError(
                f"publish {pid}: the database committed but the staged rows of {name!r} "
                f"({source}) are gone, so the lake table cannot catch up; re-run the nightly "
                f"for {run_date} (or 'recpipe recs rollback --date {run_date}') to make "
                "both stores agree again"
            )
        commit = lake.write_date(
            stores.lake(name),
            source,
            run_date,
            pid,
            record.get("keep_runs"),
            {"recpipe.source_run_id": record.get("source_run_id", record["run_id"])},
            stamp=record.get("stamp"),
            refreshed_at=_refreshed_at(record, table["kind"]),
        )
        checkpoint(f"publish:lake-{name}-committed")
        versions[name] = commit.version
        record = journal.advance(
            stores.journal, record, f"lake:{name}", lake_versions=dict(versions)
        )
    record = journal.advance(stores.journal, record, "done")
    checkpoint("publish:done")
    return _summary(stores, _after_commit(stores, engine, record))


def _after_commit(stores: Stores, engine: Any, record: dict) -> dict:
    """Side effects, each safe to redo: the champion alias, cleanup, vacuum; the record
    with what happened to the alias."""
    move = record.get("champion")
    if move:
        from tasks.promote import move_champion_after_publish

        outcome = move_champion_after_publish(
            stores.root,
            ChampionMove(**move),
            date.fromisoformat(record["run_date"]),
            _newest_published(engine, record),
        )
        if outcome != record.get("champion_outcome"):
            record = journal.advance(stores.journal, record, "done", champion_outcome=outcome)
        checkpoint("publish:champion-moved")
    _cleanup(stores, engine, record)
    return record


def _newest_published(engine: Any, record: dict) -> date | None:
    names = [t["name"] for t in record["tables"] if t["kind"] == RECOMMENDATIONS]
    dates = [d for d in (db.newest_date(engine, n) for n in names) if d is not None]
    return max(dates) if dates else None


def _cleanup(stores: Stores, engine: Any, record: dict) -> None:
    pid = record["publish_id"]
    try:
        db.drop_tables(engine, [db.staging_name(t["name"], pid) for t in record["tables"]])
    except Exception as exc:  # noqa: BLE001 - cleanup is redone by the next recovery
        log.warning("could not drop the staging tables of %s: %s", pid, exc)
    shutil.rmtree(stores.staged / pid, ignore_errors=True)
    for table in record["tables"]:
        try:
            lake.vacuum(stores.lake(table["name"]), record.get("retention_hours", 168.0))
        except Exception as exc:  # noqa: BLE001 - vacuum is housekeeping
            log.warning("could not vacuum lake table %s: %s", table["name"], exc)
    journal.prune(stores.journal)


def _roll_back_quietly(stores: Stores, engine: Any, pid: str) -> None:
    """Undo a publish whose database transaction did not commit: its staging tables and
    staged files go, the journal says ``rolled_back``. The lake was never touched."""
    path = journal.path_for(stores.journal, pid)
    record = journal.read(path) if path.exists() else None
    names = [t["name"] for t in record["tables"]] if record else []
    try:
        db.drop_tables(engine, [db.staging_name(n, pid) for n in names])
    except Exception as exc:  # noqa: BLE001 - the sweep of the next run drops them
        log.warning("could not drop the staging tables of %s: %s", pid, exc)
    shutil.rmtree(stores.staged / pid, ignore_errors=True)
    if record is not None and record["state"] not in journal.FINISHED:
        journal.advance(stores.journal, record, "rolled_back")


def _summary(stores: Stores, record: dict) -> dict:
    tables = {t["name"]: t for t in record["tables"]}
    recs = next(t for t in record["tables"] if t["kind"] == RECOMMENDATIONS)
    out = {
        "publish_id": record["publish_id"],
        "parquet": str(stores.lake(recs["name"])),
        "lake": str(stores.lake(recs["name"])),
        "lake_version": record.get("lake_versions", {}).get(recs["name"]),
        "rows": recs["rows"],
        "table": recs["name"],
        "database": _masked(stores.database_url),
        "pruned": record.get("database_dropped", {}).get(recs["name"], []),
        "champion_outcome": record.get("champion_outcome"),
    }
    similar = [t for t in tables.values() if t["kind"] == SIMILAR_ITEMS]
    if similar:
        out["similar"] = {
            "table": similar[0]["name"],
            "rows": similar[0]["rows"],
            "lake": str(stores.lake(similar[0]["name"])),
        }
    return out


def _masked(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# -- recovery -----------------------------------------------------------------------------
def recover(
    stores: Stores,
    held_date: date | None = None,
    tables: tuple[str, ...] = (RECOMMENDATIONS, SIMILAR_ITEMS),
    wait_seconds: float = 0,
) -> list[dict]:
    """Finish or undo every interrupted publish, then sweep leftovers; what was done.

    ``held_date``: the date whose run lock the caller holds (its publishes are dead by
    definition). Other dates' records are recovered only if their lock is free.
    ``tables``: the workspace's table names; only their staging tables are swept (a
    database may hold other workspaces' tables).
    """
    from tasks.storage.locks import LockError, holder_info, run_lock

    done: list[dict] = []
    engine = db.make_engine(stores.database_url)
    try:
        for record in journal.unfinished(stores.journal):
            run_date = date.fromisoformat(record["run_date"])
            if record.get("database") != journal.database_digest(stores.database_url):
                raise PublishError(
                    f"publish journal {journal.path_for(stores.journal, record['publish_id'])} "
                    "was written for another database than the one configured now; run "
                    "'recpipe doctor' with that database configured (publish.database_url)"
                )
            try:
                if run_date == held_date:
                    done.append(_recover_one(stores, engine, record))
                else:
                    holder = holder_info("recovery", run_date=run_date.isoformat())
                    with run_lock(stores.root / "locks", run_date, wait_seconds, holder):
                        done.append(_recover_one(stores, engine, record))
            except LockError:
                continue  # a live run of that date owns it
        done.extend(_sweep(stores, engine, tables))
    except PublishError:
        raise
    except Exception as exc:
        raise PublishError(
            f"recovering interrupted publishes against "
            f"{engine.url.render_as_string(hide_password=True)} failed: "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}; nothing was changed by "
            "this run; fix the database and run 'recpipe doctor'"
        ) from exc
    finally:
        engine.dispose()
    return done


def _recover_one(stores: Stores, engine: Any, record: dict) -> dict:
    pid = record["publish_id"]
    # Re-read: the record may have moved on since the folder was listed.
    record = journal.read(journal.path_for(stores.journal, pid))
    if record["state"] in journal.FINISHED:
        return {"publish_id": pid, "action": "none", "state": record["state"]}
    pairs = [(t["name"], t["kind"]) for t in record["tables"]]
    if record["state"] != "intent" or db.is_committed(engine, pid, pairs):
        if record["state"] == "intent":
            record = journal.advance(stores.journal, record, "database")
        _roll_forward(stores, engine, record)
        return {"publish_id": pid, "action": "rolled forward", "state": "done"}
    _roll_back_quietly(stores, engine, pid)
    return {"publish_id": pid, "action": "rolled back", "state": "rolled_back"}


def _sweep(stores: Stores, engine: Any, tables: tuple[str, ...]) -> list[dict]:
    """Leftovers no unfinished publish owns: staging tables of ``tables``, staged
    folders, the half-swapped folders of the older lake layout."""
    unfinished = journal.unfinished(stores.journal)
    live = {r["publish_id"] for r in unfinished}
    owned = {db.staging_name(t["name"], r["publish_id"]) for r in unfinished for t in r["tables"]}
    ours = tuple(f"{name}{db.STAGING_MARK}" for name in tables)
    legacy = {f"{name}__staging" for name in tables}
    out = []
    stale = [
        n
        for n in db.staging_tables(engine)
        if n not in owned and (n.startswith(ours) or n in legacy)
    ]
    for name in db.drop_tables(engine, stale):
        out.append({"action": "dropped staging table", "name": name})
    if stores.staged.exists():
        for folder in sorted(stores.staged.iterdir()):
            if folder.name not in live:
                shutil.rmtree(folder, ignore_errors=True)
                out.append({"action": "removed staged files", "name": folder.name})
    if stores.tables.exists():
        for root in sorted(p for p in stores.tables.iterdir() if p.is_dir()):
            for name in lake.sweep_legacy(root):
                out.append({"action": "removed half-swapped folder", "name": f"{root.name}/{name}"})
    return out


# -- reading and rolling back -------------------------------------------------------------
def read_lake_table(root: Path, run_date: date | None = None) -> pd.DataFrame:
    return lake.read_table(root, run_date)


def read_database_table(
    url: str, name: str, run_date: date | None = None, kind: str = RECOMMENDATIONS
) -> pd.DataFrame:
    return db.read_table(url, name, run_date, kind)


def rollback_date(stores: Stores, run_date: date, tables: list[tuple[str, str]]) -> dict:
    """Publish ``run_date``'s previous version again, in both stores (``tables``:
    ``(name, kind)``, the first the recommendations table).

    The previous version is the newest earlier lake commit of that date that holds rows
    of another run; its rows (their ``run_id`` included) come back bit for bit, through
    the same journaled publish as a nightly run.
    """
    main = tables[0][0]
    commits = lake.history(stores.lake(main), run_date)
    if not commits:
        raise PublishError(
            f"table {main!r} has no published version of {run_date} in the lake "
            f"({stores.lake(main)}); nothing to roll back; 'recpipe recs dates' lists what is published"
        )
    current = commits[0]
    earlier = [c for c in commits[1:] if c["source_run_id"] != current["source_run_id"]]
    if not earlier:
        raise PublishError(
            f"{run_date} has only been published by run {current['source_run_id']} (lake "
            f"versions {[c['version'] for c in commits]}); there is no previous version to "
            "roll back to; the lake keeps versions for publish.lake_retention_hours"
        )
    target = earlier[0]
    rollback_id = f"rollback-{uuid.uuid4().hex[:12]}"
    folder = stores.staged / f"rollback-src-{rollback_id}"
    folder.mkdir(parents=True)
    try:
        outputs = []
        for name, kind in tables:
            match = [
                c
                for c in lake.history(stores.lake(name), run_date)
                if c["publish_id"] == target["publish_id"]
            ]
            if not match:
                continue  # this table was not part of that publish: it stays as it is
            frame = lake.read_table(stores.lake(name), run_date, version=match[0]["version"])
            path = folder / f"{name}.parquet"
            frame.to_parquet(path, index=False)
            outputs.append(Output(name, kind, path))
        result = publish_night(
            stores,
            rollback_id,
            run_date,
            outputs,
            source_run_id=target["source_run_id"],
            stamp=False,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {**result, "restored_run_id": target["source_run_id"], "from_version": target["version"]}


class Published(StageResult):
    """Where the night's tables were published and what the commit did (``parquet``,
    ``similar`` and the like ride along)."""

    publish_id: str
    lake: str
    lake_version: int | None
    rows: int
    table: str
    database: str
    pruned: list[Any]
    champion_outcome: str | None


def publish(
    workspace_root: str,
    database_url: str,
    run_id: str,
    run_date: date,
    outputs: list[Output],
    keep_runs: int,
    champion: ChampionMove | None,
    retention_hours: float,
) -> Published:
    """Both tables to both stores with one commit point, then the champion alias
    (:func:`publish_night`)."""
    stores = Stores(Path(workspace_root), database_url)
    return Published(
        **publish_night(
            stores, run_id, run_date, outputs, keep_runs, champion, retention_hours=retention_hours
        )
    )


@task(name="publish", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def publish_task(
    workspace_root: str,
    database_url: str,
    run_id: str,
    run_date: date,
    outputs: list[Output],
    keep_runs: int,
    champion: ChampionMove | None,
    retention_hours: float,
) -> Published:
    return publish(
        workspace_root,
        database_url,
        run_id,
        run_date,
        outputs,
        keep_runs,
        champion,
        retention_hours,
    )
