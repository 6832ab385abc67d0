"""``recpipe doctor --repair``: rebuild the damaged store's dates from the whole one.

The database is the commit point, so a date the lake lost or holds wrongly is published
again from the database's rows; a database that is lost or damaged is rebuilt from the
lake (each date from its newest readable version). Either way the rows go through the
nightly's own path (tasks/publish.py: journal, staged files, one database transaction,
one Delta commit per table), under the publish id ``<date>_doctor-<time>``; the lake's
commit also records the logged publishes it stands for, whose own commits were lost.

Nothing is thrown away: before anything is replaced it is kept under
``<workspace>/backups/doctor-<UTC time>/``: a damaged Delta log's version files, a
damaged SQLite file (with its ``-wal``/``-shm``), and the rows each rebuilt date held in
the damaged store, as Parquet.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.errors import PublishError
from tasks.publishing import readback
from tasks.publishing.stores import Output, Stores
from tasks.publishing.verify import DateCheck, Report, verify
from tasks.storage import database as db
from tasks.storage import lake


def backup_folder(stores: Stores) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return stores.root / "backups" / f"doctor-{stamp}"


def repair(
    stores: Stores, tables: list[tuple[str, str]], report: Report, publish: Callable[..., dict]
) -> dict[str, Any]:
    """Repair what ``report`` found (see the module docstring); what was done, the backup
    folder and the report after the repair. ``publish``: the nightly's publish
    (``tasks.publish.publish_night``), which every rebuilt date goes through."""
    backup = backup_folder(stores)
    actions: list[str] = []
    trust_lake = _set_aside_database(stores, report, backup, actions)
    for name, _ in tables:
        _set_aside_log(stores.lake(name), name, report, backup, actions)
    if actions:
        report = verify(stores, tables)
    present = {c.table for c in report.dates}
    tables = [(n, k) for n, k in tables if n in present]
    by_date: dict[date, list[DateCheck]] = {}
    for check in report.disagreements():
        by_date.setdefault(check.day, []).append(check)
    for day, checks in sorted(by_date.items()):
        side = "database" if trust_lake or all(c.damaged == "database" for c in checks) else "lake"
        if any(c.damaged == "both" for c in checks):
            actions.append(
                f"{day}: neither store holds it whole; run the nightly for {day} to publish "
                "it again"
            )
            continue
        actions.append(_republish(stores, tables, day, checks, side, backup, publish))
    _sweep(stores, tables)
    after = verify(stores, tables)
    if backup.exists():
        (backup / "manifest.json").write_text(json.dumps(actions, indent=1), encoding="utf-8")
    return {"actions": actions, "backup": backup if backup.exists() else None, "report": after}


def _set_aside_database(stores: Stores, report: Report, backup: Path, actions: list[str]) -> bool:
    """A damaged or unreadable SQLite file is moved into the backup (the lake then rebuilds
    it); True when the lake is the side to trust for every date."""
    broken = [f for f in report.findings if f.store.startswith("database")]
    if not broken:
        return False
    engine = db.make_engine(stores.database_url)
    try:
        sqlite = engine.dialect.name == "sqlite"
        path = Path(engine.url.database or "") if sqlite else None
    finally:
        engine.dispose()
    if path is not None and any(f.check in ("integrity", "read") for f in broken):
        target = backup / "database"
        target.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{path}{suffix}")
            if source.exists():
                shutil.move(source, target / source.name)
        actions.append(f"moved the damaged database {path} to {target}")
    elif path is None and any(f.check == "integrity" for f in broken):
        raise PublishError(
            "the PostgreSQL database failed its catalog check ("
            + "; ".join(f.detail for f in broken)
            + "); restore it from its backup (or drop the damaged tables), then run "
            "'recpipe doctor --repair' to rebuild them from the lake"
        )
    return True


def _set_aside_log(root: Path, name: str, report: Report, backup: Path, actions: list[str]) -> None:
    """Move a damaged Delta log's broken version and every later one into the backup: the
    table is back at the last whole version, and the dates it lost are republished."""
    problems = [f for f in report.findings if f.store == f"lake {name}" and f.check == "delta log"]
    if not problems:
        return
    log = root / "_delta_log"
    broken = _first_broken_version(log)
    target = backup / "lake" / name / "_delta_log"
    target.mkdir(parents=True, exist_ok=True)
    if broken is None:  # a log that does not load for another reason: the table goes
        shutil.move(root, backup / "lake" / name / "table")
        actions.append(f"moved lake table {name} (its log does not load) to {target.parent}")
        return
    for path in sorted(log.iterdir()):
        stem = path.name.split(".", 1)[0]
        if stem.isdigit() and int(stem) >= broken:
            shutil.move(path, target / path.name)
    checkpoint = readback.checkpoint_version(root)
    if checkpoint is not None and checkpoint >= broken:
        shutil.move(log / "_last_checkpoint", target / "_last_checkpoint")
    actions.append(f"lake {name}: moved its log from version {broken} on (unreadable) to {target}")


def _first_broken_version(log: Path) -> int | None:
    for path in sorted(log.glob("*.json")):
        stem = path.name[:20]
        if not stem.isdigit():
            continue
        try:
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line]
            if not lines:
                return int(stem)
            for line in lines:
                json.loads(line)
        except (OSError, ValueError):
            return int(stem)
    return None


def _republish(
    stores: Stores,
    tables: list[tuple[str, str]],
    day: date,
    checks: list[DateCheck],
    side: str,
    backup: Path,
    publish_night: Callable[..., dict],
) -> str:
    """Publish ``day`` again from the whole side, its damaged rows kept in the backup."""
    source = "lake" if side == "database" else "database"
    folder = stores.staged / f"doctor-src-{day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        outputs, run_ids = [], Counter[str]()
        for name, kind in tables:
            frame = _rows(stores, name, kind, day, source)
            damaged = _rows_or_none(stores, name, kind, day, side)
            if damaged is not None and len(damaged):
                keep = backup / side / name / f"run_date={day.isoformat()}.parquet"
                keep.parent.mkdir(parents=True, exist_ok=True)
                damaged.to_parquet(keep, index=False)
            if side == "lake":
                frame = _like_lake(stores.lake(name), frame)
            path = folder / f"{name}.parquet"
            frame.to_parquet(path, index=False)
            outputs.append(Output(name, kind, path))
            run_ids.update(str(r) for r in frame.get("run_id", []))
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        covers = {c.table: c.missing for c in checks if c.missing}
        publish_night(
            stores,
            f"doctor-{stamp}",
            day,
            outputs,
            keep_runs=None,
            source_run_id=run_ids.most_common(1)[0][0] if run_ids else None,
            stamp=False,
            covers=covers,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    what = ", ".join(sorted({c.table for c in checks}))
    return f"{day}: {what} rebuilt in the {side} from the {source}"


def _rows(stores: Stores, name: str, kind: str, day: date, store: str) -> pd.DataFrame:
    """``day``'s rows of table ``name`` in ``store`` (the lake: its newest version that
    reads); an empty frame when the store does not hold the date."""
    if store == "database":
        frame = db.read_table(stores.database_url, name, day, kind)
        return frame.drop(columns=["run_date"], errors="ignore")
    root = stores.lake(name)
    if not lake.is_table(root):
        return pd.DataFrame()
    versions = [None, *[c["version"] for c in lake.history(root, day)]]
    error: Exception | None = None
    for version in versions:
        try:
            frame = lake.read_table(root, day, version=version)
            return frame.drop(columns=["run_date"], errors="ignore")
        except Exception as exc:  # noqa: BLE001 - an older version may still read
            error = exc
    raise PublishError(
        f"lake table {name} cannot be read for {day} in any version ({error}); run the "
        f"nightly for {day} to publish it again"
    )


def _rows_or_none(stores: Stores, name: str, kind: str, day: date, store: str) -> Any:
    try:
        if store == "lake":
            return (
                lake.read_table(stores.lake(name), day)
                if lake.is_table(stores.lake(name))
                else None
            )
        return db.read_table(stores.database_url, name, day, kind)
    except Exception:  # noqa: BLE001 - the damaged side may not read at all
        return None


def _like_lake(root: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """The database's rows in the lake table's column types (``refreshed_at`` as UTC)."""
    import pyarrow as pa

    if "refreshed_at" in frame.columns:
        frame = frame.assign(refreshed_at=pd.to_datetime(frame["refreshed_at"], utc=True))
    if not lake.is_table(root):
        return frame
    schema = lake._dt(root).schema().to_arrow()
    fields = {f.name: pa.field(f.name, f.type) for f in pa.schema(schema)}
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i, column in enumerate(table.column_names):
        if column in fields and table.schema.field(i).type != fields[column].type:
            table = table.set_column(i, fields[column], table.column(i).cast(fields[column].type))
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def _sweep(stores: Stores, tables: list[tuple[str, str]]) -> None:
    """Leftovers the repair made unnecessary (staged files kept for a lake now level)."""
    from tasks.publishing.recovery import recover

    recover(stores, tables=tuple(n for n, _ in tables))
