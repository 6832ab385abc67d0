"""Recovery: every interrupted publish finished or undone, from the journal, then the
leftovers no unfinished publish owns swept.

A process killed anywhere leaves a journal record that is not ``done``. Every run (and
``recpipe doctor``) calls :func:`recover` first: forward for a publish whose database
transaction committed (finish the lake and the alias from the linked files), back for one
whose transaction did not (drop its staging tables and files). Publishes of a date that
another process is running right now (it holds the date's run lock) are left to it.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

from tasks.errors import PublishError
from tasks.publishing.commit import roll_back_quietly, roll_forward
from tasks.publishing.stores import RECOMMENDATIONS, SIMILAR_ITEMS, Stores
from tasks.storage import database as db
from tasks.storage import journal, lake


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
        roll_forward(stores, engine, record)
        return {"publish_id": pid, "action": "rolled forward", "state": "done"}
    roll_back_quietly(stores, engine, pid)
    return {"publish_id": pid, "action": "rolled back", "state": "rolled_back"}


def _needed_by_lake(stores: Stores, engine: Any, folder: Path) -> bool:
    """Staged files of a publish whose database transaction committed while a lake table
    has not (its journal record lost): they stay until the lake is level
    (``recpipe doctor --repair``)."""
    names = [p.name for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
    if not names:
        return False
    try:
        committed = db.is_committed(engine, folder.name, [(n, "") for n in names])
    except Exception:  # noqa: BLE001 - cannot tell: keep them
        return True
    return committed and not all(lake.is_committed(stores.lake(n), folder.name) for n in names)


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
            if folder.name in live:
                continue
            if _needed_by_lake(stores, engine, folder):
                out.append({"action": "kept staged files", "name": folder.name})
                continue
            shutil.rmtree(folder, ignore_errors=True)
            out.append({"action": "removed staged files", "name": folder.name})
    if stores.tables.exists():
        for root in sorted(p for p in stores.tables.iterdir() if p.is_dir()):
            for name in lake.sweep_legacy(root):
                out.append({"action": "removed half-swapped folder", "name": f"{root.name}/{name}"})
    return out
