"""Do the two stores agree? For every kept date of every published table: each store's
row count and content digest (tasks/publishing/digest.py), the Delta log whole and every
file it lists present, the database sound (SQLite ``integrity_check``, PostgreSQL's
catalog), and every publish the database logged for the date committed in the lake.

:func:`verify` is ``recpipe doctor``'s check (``deep``: digests of every date from both
stores, and the database's integrity). :func:`check_before_publish` is the night's
(before its commit point): the same without reading rows, from the counts, the files,
the logs and the digests stored at publish time; a disagreement stops the night.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from tasks.errors import PublishError
from tasks.publishing import readback
from tasks.publishing.digest import Digest
from tasks.publishing.stores import Stores
from tasks.storage import database as db
from tasks.storage import journal

REPAIR_LINE = "run 'recpipe doctor' to see what differs and 'recpipe doctor --repair' to repair it"
WORKERS = 2  # the database and the lake are read at the same time


@dataclass
class DateCheck:
    """One table's date in both stores."""

    table: str
    kind: str
    day: date
    database: Digest | None = None  # None: the store does not hold the date
    lake: Digest | None = None
    database_error: str | None = None
    lake_error: str | None = None
    published: Digest | None = None  # what the newest publish of the date wrote
    missing: list[str] = field(default_factory=list)  # logged publishes the lake lacks

    @property
    def damaged(self) -> str | None:
        """The store that does not hold what it should (None: they agree)."""
        if self.lake_error or self.missing:
            return "lake" if not self.database_error else "both"
        if self.database_error:
            return "database"
        if self.database == self.lake:
            return None
        if self.published is not None and self.lake == self.published:
            return "database"
        return "lake"  # the database is the commit point: the lake follows it

    def describe(self) -> str:
        if self.damaged is None:
            return "agree"
        parts = []
        for store, found, error in (
            ("database", self.database, self.database_error),
            ("lake", self.lake, self.lake_error),
        ):
            parts.append(f"{store}: {error or (found if found else 'no rows')}")
        if self.missing:
            parts.append(f"the lake lacks publish {', '.join(self.missing)}")
        return "; ".join(parts)


@dataclass
class Finding:
    """A problem of a store as a whole (its log, its file, an unfinished publish)."""

    check: str
    store: str
    detail: str


@dataclass
class Report:
    dates: list[DateCheck]
    findings: list[Finding]

    @property
    def agrees(self) -> bool:
        return not self.findings and all(d.damaged is None for d in self.dates)

    def disagreements(self) -> list[DateCheck]:
        return [d for d in self.dates if d.damaged is not None]

    def summary(self) -> str:
        """One line on what does not agree."""
        parts = [f"{f.store} {f.check}: {f.detail}" for f in self.findings]
        parts += [f"{d.table} {d.day}: {d.describe()}" for d in self.disagreements()]
        shown = "; ".join(parts[:3]) + (f"; and {len(parts) - 3} more" if len(parts) > 3 else "")
        return f"the stores do not agree ({shown})"


def verify(
    stores: Stores,
    tables: list[tuple[str, str]],
    deep: bool = True,
    skip: tuple[date, ...] = (),
    every_row: bool = False,
) -> Report:
    """Check both stores (see the module docstring). ``tables``: ``(name, kind)``;
    ``skip``: dates not to check (the one a night is about to replace).

    ``deep``: the lake's rows of every date are read and digested, and the database's
    integrity checked; the database's rows of a date are read when its count differs
    from what the date's newest publish logged, or that publish logged no digest (a
    refresh or an erasure came after it), or with ``every_row``. A database that passes
    its integrity check and holds the logged count of the logged publish holds its rows."""
    findings: list[Finding] = []
    engine = db.make_engine(stores.database_url)
    try:
        with ThreadPoolExecutor(WORKERS) as pool:
            integrity = (
                pool.submit(readback.database_problem, engine, [n for n, _ in tables])
                if deep
                else None
            )
            checks = _date_checks(stores, engine, tables, findings, skip)
            if deep:
                _digest_all(stores, engine, checks, pool, every_row)
            problem = integrity.result() if integrity is not None else None
        if problem:
            findings.append(Finding("integrity", "database", problem))
            for check in checks:
                check.database_error = check.database_error or "the database is damaged"
    finally:
        engine.dispose()
    for record in journal.unfinished(stores.journal):
        findings.append(
            Finding(
                "journal",
                "both",
                f"publish {record['publish_id']} is unfinished ({record['state']}); a run of "
                f"{record['run_date']} holds it, or recovery failed",
            )
        )
    return Report(checks, findings)


def _date_checks(
    stores: Stores,
    engine: Any,
    tables: list[tuple[str, str]],
    findings: list[Finding],
    skip: tuple[date, ...],
) -> list[DateCheck]:
    """Counts, files and logs for every date either store holds (no rows read)."""
    checks: list[DateCheck] = []
    try:
        db_counts: dict[str, dict[date, int]] = {
            n: readback.database_counts(engine, n) for n, _ in tables
        }
        db_error = None
    except Exception as exc:  # noqa: BLE001 - an unreadable database is the finding
        db_counts, db_error = {n: {} for n, _ in tables}, _short(exc)
        findings.append(Finding("read", "database", db_error))
    for name, kind in tables:
        root = stores.lake(name)
        problems = readback.delta_log_problems(root)
        for problem in problems:
            findings.append(Finding("delta log", f"lake {name}", problem))
        try:
            lake_counts, missing_files = readback.lake_counts(root)
            lake_error = None
        except Exception as exc:  # noqa: BLE001 - an unreadable table is the finding
            lake_counts, missing_files, lake_error = {}, {}, _short(exc)
            if not problems:
                findings.append(Finding("read", f"lake {name}", lake_error))
        days = sorted((set(db_counts[name]) | set(lake_counts)) - set(skip))
        table_error = db_error
        if not db_counts[name] and lake_counts and db_error is None:
            # a database table lost or replaced by an empty one: the lake has it all
            table_error = "the database holds none of the lake's dates (lost or replaced)"
            findings.append(Finding("rows", f"database {name}", table_error))
        try:
            log = [e for e in readback.publish_log(engine, set(days)) if name in e["tables"]]
        except Exception:  # noqa: BLE001 - the database's own finding says why
            log = []
        have = readback.lake_publishes(root, [e["publish_id"] for e in log])
        for day in days:
            logged = [e for e in log if e["run_date"] == day]
            stored = (logged[-1]["digests"] or {}).get(name) if logged else None
            check = DateCheck(name, kind, day, database_error=table_error, lake_error=lake_error)
            if day in db_counts[name]:
                check.database = Digest(db_counts[name][day], "")
            if day in lake_counts:
                rows = lake_counts[day]
                if rows is None:  # no statistics: only reading the rows tells
                    rows = check.database.rows if check.database else 0
                check.lake = Digest(rows, "")
            if day in missing_files:
                files = missing_files[day]
                check.lake_error = f"{len(files)} data file(s) missing, e.g. {files[0]}"
            if problems:
                check.lake_error = check.lake_error or "its Delta log is damaged"
            check.missing = [e["publish_id"] for e in logged if e["publish_id"] not in have]
            if stored:
                check.published = Digest(int(stored["rows"]), stored["digest"])
                if check.database and check.database.rows == check.published.rows:
                    check.database = Digest(check.database.rows, stored["digest"])
                if check.lake and check.lake.rows == check.published.rows and not check.missing:
                    check.lake = Digest(check.lake.rows, stored["digest"])
            checks.append(check)
    return checks


def _digest_all(
    stores: Stores, engine: Any, checks: list[DateCheck], pool: Any, every_row: bool
) -> None:
    """Replace the counts by digests read from the rows, both stores at once."""
    jobs = []
    for check in checks:
        logged = check.published is not None and check.database == check.published
        if check.database is not None and not check.database_error and (every_row or not logged):
            job = pool.submit(readback.database_digest, engine, check.table, check.kind, check.day)
            jobs.append((check, "database", job))
        if check.lake is not None and not check.lake_error:
            root = stores.lake(check.table)
            jobs.append(
                (check, "lake", pool.submit(readback.lake_digest, root, check.kind, check.day))
            )
    for check, store, job in jobs:
        try:
            setattr(check, store, job.result())
        except Exception as exc:  # noqa: BLE001 - a date that cannot be read is the finding
            setattr(check, f"{store}_error", _short(exc))


def check_before_publish(stores: Stores, tables: list[tuple[str, str]], run_date: date) -> None:
    """Before a night's commit point: the dates it keeps agree in both stores (no rows
    read), or a ``PublishError`` with the doctor's line; nothing is published then.
    Dates another run is working on (its lock held, its publish unfinished) are left to
    it."""
    from tasks.storage.locks import held_locks

    busy = {
        date.fromisoformat(name.removeprefix("run_date="))
        for name in held_locks(stores.root / "locks")
        if name.startswith("run_date=")
    }  # another night of that date is publishing right now: its stores may be mid-way
    busy |= {date.fromisoformat(r["run_date"]) for r in journal.unfinished(stores.journal)}
    report = verify(stores, tables, deep=False, skip=(run_date, *sorted(busy)))
    report.findings = [f for f in report.findings if f.check != "journal"]
    if not report.agrees:
        raise PublishError(
            f"{report.summary()}; nothing was published for {run_date} and the previous "
            f"tables still serve; {REPAIR_LINE}"
        )


def _short(exc: BaseException) -> str:
    text = " ".join(str(getattr(exc, "orig", None) or exc).split())
    return f"{type(exc).__name__}: {text[:200]}"
