"""The commit of a publish and what follows it, each step recorded in the journal.

The rows go into staging tables named for the publish, then ONE database transaction
swaps every table's run date and logs the publish: the commit point. From a committed
transaction :func:`roll_forward` finishes the lake tables (one Delta commit each), the
journal's ``done``, the champion alias and cleanup, every step safe to redo; a transaction
that did not commit is undone by :func:`roll_back_quietly`.
"""

from __future__ import annotations

import logging
import shutil
from datetime import date
from typing import Any

from tasks.errors import PublishError
from tasks.publishing.champion import ChampionMove, move_champion_after_publish
from tasks.publishing.digest import staged_digest
from tasks.publishing.staging import refreshed_at_of, staged_frames
from tasks.publishing.stores import RECOMMENDATIONS, SIMILAR_ITEMS, Stores
from tasks.storage import database as db
from tasks.storage import journal, lake
from tasks.storage.faults import checkpoint

log = logging.getLogger(__name__)


def state_advice(stores: Stores, engine: Any, pid: str, pairs: list[tuple[str, str]]) -> str:
    """What a failed publish ``pid`` left, in words for its error: nothing published (its
    uncommitted transaction rolled back now), or the database committed and the lake
    follows on the next run."""
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
    roll_back_quietly(stores, engine, pid)
    return (
        "nothing was published and the previous tables still serve; fix the database "
        "and re-run the same date"
    )


def commit_database(stores: Stores, engine: Any, record: dict) -> dict:
    """The staged rows into staging tables, then the one transaction that swaps every
    table's run date: the commit point. A failure before it rolls the publish back; the
    record, advanced to ``database``."""
    run_date = date.fromisoformat(record["run_date"])
    pid = record["publish_id"]
    pairs = [(t["name"], t["kind"]) for t in record["tables"]]
    swapping = False
    digests = record.get("digests") or staged_digests(stores, record)
    try:
        db.prepare_tables(engine, pairs)
        for table in record["tables"]:
            source = stores.root / table["staged"]
            frames = staged_frames(
                source, record.get("stamp"), refreshed_at_of(record, table["kind"])
            )
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
            digests=digests,
        )
    except Exception:
        committed = False
        if swapping:  # the commit may have landed before the error: ask
            try:
                committed = db.is_committed(engine, pid, pairs)
            except Exception:  # noqa: BLE001 - the database failed; the next recovery decides
                committed = True
        if not committed:
            roll_back_quietly(stores, engine, pid)
        raise
    checkpoint("publish:database-committed")
    return journal.advance(
        stores.journal, record, "database", database_dropped=dropped, digests=digests
    )


def staged_digests(stores: Stores, record: dict) -> dict[str, dict]:
    """``{table: {"rows", "digest"}}`` of what a publish writes, from its staged files."""
    out = {}
    for table in record["tables"]:
        found = staged_digest(
            stores.root / table["staged"],
            table["kind"],
            record.get("stamp"),
            refreshed_at_of(record, table["kind"]),
        )
        out[table["name"]] = {"rows": found.rows, "digest": found.digest}
    return out


def roll_forward(stores: Stores, engine: Any, record: dict) -> dict:
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
        digest = (record.get("digests") or {}).get(name) or {}
        metadata = {"recpipe.source_run_id": record.get("source_run_id", record["run_id"])}
        if digest:
            metadata |= {"recpipe.rows": str(digest["rows"]), "recpipe.digest": digest["digest"]}
        commit = lake.write_date(
            stores.lake(name),
            source,
            run_date,
            pid,
            record.get("keep_runs"),
            metadata,
            stamp=record.get("stamp"),
            refreshed_at=refreshed_at_of(record, table["kind"]),
            covers=tuple((record.get("covers") or {}).get(name, ())),
        )
        checkpoint(f"publish:lake-{name}-committed")
        versions[name] = commit.version
        record = journal.advance(
            stores.journal, record, f"lake:{name}", lake_versions=dict(versions)
        )
    record = journal.advance(stores.journal, record, "done")
    checkpoint("publish:done")
    return summary(stores, _after_commit(stores, engine, record))


def _after_commit(stores: Stores, engine: Any, record: dict) -> dict:
    """Side effects, each safe to redo: the champion alias, cleanup, vacuum; the record
    with what happened to the alias."""
    move = record.get("champion")
    if move:
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


def roll_back_quietly(stores: Stores, engine: Any, pid: str) -> None:
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


def summary(stores: Stores, record: dict) -> dict:
    """What a publish reports: its tables, rows and lake version, the database (password
    masked), the run dates it dropped and what happened to the alias."""
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
