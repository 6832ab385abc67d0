"""One erasure, through a journal: ``forget_users`` is what ``recpipe forget`` and the
``recpipe-forget`` flow run.

Under the workspace's erasure lock (exclusive: nights hold it shared from ingest to
publish, so no night writes while users are being removed), the request goes:

    ledger (pending) -> models (tag the versions) -> database -> lake -> files
                     -> prefect (artifacts, through the API) -> sqlite (MLflow, Prefect)
                     -> markers -> ledger (done)

Each step is atomic in its store (a transaction, a Delta commit, a file renamed into
place) and idempotent; the journal ``<workspace>/forget/journal/<request>.json`` (hashes
and counts, never an id) records each step as it lands. A run killed half way leaves
every store in its old or its new state; running the same request again skips the
steps that landed and finishes the others. The ledger entry is written first, so from
that moment later ingests drop the user's events even before the request finishes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tasks.forget import ledger
from tasks.forget.ledger import ForgetError, atomic_write
from tasks.storage.faults import checkpoint

STEPS = ("models", "database", "lake", "files", "prefect", "sqlite", "markers")
LOCK_NAME = "erasure.lock"


@contextmanager
def erasure_lock(lock_dir: Path, wait_seconds: float, shared: bool, holder: dict) -> Iterator[None]:
    """Nights hold it shared (any number at once), an erasure exclusive (alone)."""
    import fcntl
    import os

    from tasks.storage.locks import RETRY_SECONDS, LockError, say_waiting

    path = Path(lock_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + max(wait_seconds, RETRY_SECONDS)
    told = False
    try:
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                what = "an erasure ('recpipe forget')" if shared else "a nightly run"
                if not told and wait_seconds >= 1:
                    say_waiting(what, _holders(lock_dir, shared), path, wait_seconds)
                    told = True
                if time.monotonic() >= deadline:
                    raise LockError(
                        f"{what} holds {path}; this run stopped before writing anything; "
                        f"wait for it to finish ('recpipe status') or raise lock.wait_seconds "
                        f"(waited {wait_seconds:g} s)"
                    ) from None
                time.sleep(RETRY_SECONDS)
        if not shared:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
        yield
    finally:
        os.close(fd)


def _holders(lock_dir: Path, shared: bool) -> str:
    """Who holds the erasure lock, as far as the lock files tell: the nights running now
    (they hold it shared), or the erasure's holder."""
    from tasks.storage.locks import describe_holder, held_locks

    if shared:
        return "an erasure"
    nights = [
        f"the night of {name.removeprefix('run_date=')} ({describe_holder(info)})"
        for name, info in held_locks(lock_dir).items()
        if name.startswith("run_date=")
    ]
    return ", ".join(nights) or "a nightly run"


def clean_ids(user_ids: list[str]) -> list[str]:
    ids = sorted({u for u in (str(x).strip() for x in user_ids) if u})
    if not ids:
        raise ForgetError(
            "recpipe forget: no user id given; expected --user ID (repeatable) or --user-file "
            "FILE with one id per line"
        )
    return ids


def journal_path(root: Path, request_id: str) -> Path:
    path = ledger.folder(root) / "journal"
    path.mkdir(exist_ok=True, mode=0o700)
    return path / f"{request_id}.json"


def _write_journal(root: Path, record: dict) -> None:
    record["updated_at"] = ledger.now()
    data = json.dumps(record, indent=1, sort_keys=True).encode("utf-8")
    atomic_write(journal_path(root, record["request_id"]), data)


def unfinished(root: Path) -> list[dict]:
    """Erasure requests a killed run left unfinished (re-run them with the same ids)."""
    folder = Path(root) / ledger.FOLDER / "journal"
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("state") != "done":
            out.append(record)
    return out


def forget_users(
    root: Path,
    database_url: str,
    user_ids: list[str],
    registered_name: str,
    *,
    wait_seconds: float = 60.0,
    holder: dict | None = None,
    extra_databases: list[Path] | None = None,
    tables: tuple[str, ...] = ("recommendations", "similar_items"),
) -> dict[str, Any]:
    """Remove ``user_ids`` from every store of the workspace at ``root`` (see the module
    docstring); the summary (hashes and counts, no id)."""
    from tasks.forget.forms import TextMatcher, forms_of
    from tasks.storage.workspace import Workspace

    ws = Workspace.at(root)
    ids = clean_ids(user_ids)
    key = ledger.salt(ws.root)
    hashes = {uid: ledger.user_hash(key, uid) for uid in ids}
    matcher = TextMatcher.of({uid: ledger.tombstone(h) for uid, h in hashes.items()})
    needles = sorted(
        {n.encode("utf-8") for n in matcher.owner}
        | {f.needle for uid in ids for f in forms_of(uid) if f.name.startswith("utf-16")}
    )
    request_id = hashlib.sha256("".join(sorted(hashes.values())).encode()).hexdigest()[:16]
    started = time.perf_counter()
    with erasure_lock(ws.locks, wait_seconds, shared=False, holder=holder or {}):
        path = journal_path(ws.root, request_id)
        record: dict[str, Any] = (
            json.loads(path.read_text(encoding="utf-8"))
            if path.is_file()
            else {
                "request_id": request_id,
                "users": sorted(hashes.values()),
                "created_at": ledger.now(),
                "state": "started",
                "done": {},
            }
        )
        ledger.record(ws.root, list(hashes.values()), request_id, state="pending")
        _write_journal(ws.root, record)
        skip = {ws.root / ledger.FOLDER, ws.root / "locks", ws.tables}  # other steps' stores
        steps = {
            "models": lambda: _models(ws, registered_name, set(ids), request_id),
            "database": lambda: _database(database_url, ids, list(tables)),
            "lake": lambda: _lake(ws, ids, request_id),
            "files": lambda: _files(ws, matcher, needles, skip),
            "sqlite": lambda: _sqlite(ws, matcher, skip, extra_databases),
            "prefect": lambda: _prefect(matcher),
            "markers": lambda: _markers(ws),
        }
        resumed = [s for s in STEPS if s in record["done"]]
        for step in STEPS:
            if step in record["done"]:
                continue
            checkpoint(f"forget:{step}")
            t = time.perf_counter()
            result = steps[step]()
            record["done"][step] = {"result": result, "seconds": round(time.perf_counter() - t, 3)}
            _write_journal(ws.root, record)
        record["state"] = "done"
        record["finished_at"] = ledger.now()
        _write_journal(ws.root, record)
        removed = {step: record["done"][step]["result"] for step in STEPS}
        ledger.record(
            ws.root,
            list(hashes.values()),
            request_id,
            state="done",
            completed_at=record["finished_at"],
            removed=removed,
        )
    return {
        "request_id": request_id,
        "users": [ledger.tombstone(h) for h in hashes.values()],
        "resumed_steps": resumed,
        "removed": removed,
        "step_seconds": {s: record["done"][s]["seconds"] for s in STEPS},
        "seconds": round(time.perf_counter() - started, 2),
        "affected_versions": removed["models"]["versions"],
    }


def _models(ws: Any, name: str, ids: set[str], request_id: str) -> dict:
    from tasks import tracking
    from tasks.forget.models import mark, trained_on

    client = tracking.client_for(ws)
    versions = trained_on(client, name, ids)
    mark(client, name, versions, request_id)
    return {"registered_model": name, "versions": versions}


def _database(url: str, ids: list[str], tables: list[str]) -> dict:
    from tasks.forget.stores import publish_database

    return publish_database(url, ids, tables)


def _lake(ws: Any, ids: list[str], request_id: str) -> dict:
    from tasks.forget.stores import lake_tables

    return lake_tables(ws.tables, ids, request_id)


def _files(ws: Any, matcher: Any, needles: list[bytes], skip: set[Path]) -> dict:
    from tasks.forget.files import sweep

    removed, deleted = sweep(ws.root, matcher, needles, skip)
    return {"by_area": dict(sorted(removed.items())), "deleted": deleted}


def _sqlite(ws: Any, matcher: Any, skip: set[Path], extra: list[Path] | None) -> dict:
    from tasks.forget.stores import prefect_database, scrub_sqlite, sqlite_files

    found = sqlite_files(ws.root, skip)
    prefect = prefect_database()
    for path in [*(extra or []), *([prefect] if prefect else [])]:
        if path.resolve() not in {p.resolve() for p in found}:
            found.append(path)
    out = {}
    for path in found:
        counts = scrub_sqlite(path, matcher)
        label = path.relative_to(ws.root).as_posix() if ws.root in path.parents else path.name
        out[label] = sum(counts.values())
    return out


def _prefect(matcher: Any) -> dict:
    """Artifacts on the configured Prefect server that hold an id, deleted via its API."""
    from tasks.forget.stores import prefect_artifacts

    return {"artifacts_deleted": prefect_artifacts(matcher)}


def _markers(ws: Any) -> dict:
    """Stage-cache markers describe outputs that were just rewritten: all go, and the
    next night recomputes its stages from the screened data."""
    gone = 0
    for marker in Path(ws.stage_markers).glob("*.json"):
        marker.unlink(missing_ok=True)
        gone += 1
    # similarities summed over everyone's events, the forgotten user's included
    for cached in Path(ws.similarity_cache).glob("*.npz"):
        cached.unlink(missing_ok=True)
        gone += 1
    return {"markers_removed": gone}
