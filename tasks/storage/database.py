"""Database tables of the published output, for any SQLAlchemy URL.

SQLite (the default, in the workspace) is opened in WAL mode so readers keep reading the
previous rows while a new run date is swapped in; PostgreSQL needs nothing special (MVCC).

Publishing is in two steps (tasks/publishing/commit.py drives them):

1. :func:`stage_rows` loads a run's rows into a staging table named for that run
   (``<table>__stg_<hash of the publish id>``), so two runs never share one;
2. :func:`commit_rows` swaps every table of the run in ONE transaction: for each table,
   delete the run date's rows, insert the staged rows, drop dates beyond ``keep_runs``;
   and a row in ``recpipe_publish_log`` saying the publish committed. That row is how an
   interrupted publish learns afterwards whether its transaction landed.

Only the run date's rows are touched, so runs of different dates publishing at once
keep all their rows; on PostgreSQL the swaps are serialised by a transaction-level
advisory lock (released by the commit or by the session's end, also on a crash).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

LOG_TABLE = "recpipe_publish_log"
STAGING_MARK = "__stg_"
SQLITE_BUSY_MS = 600_000  # a writer of another date may hold SQLite's write lock for minutes
REFRESHED_AT = "refreshed_at"
SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime in SQLite


def sql_table(name: str, kind: str = "recommendations", metadata: Any = None) -> Any:
    import sqlalchemy as sa

    metadata = metadata if metadata is not None else sa.MetaData()
    staging = STAGING_MARK in name or name.endswith("__staging")
    common: list[sa.Column[Any]] = [
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("run_date", sa.Date, nullable=False, index=not staging),
    ]
    columns: list[sa.Column[Any]]
    if kind == "recommendations":
        columns = [
            sa.Column("user_id", sa.String(255), nullable=False),
            sa.Column("rank", sa.Integer, nullable=False),
            sa.Column("item_id", sa.String(255), nullable=False),
            sa.Column("score", sa.Float, nullable=False),
            sa.Column("model_name", sa.String(255), nullable=False),
            sa.Column("model_version", sa.String(64), nullable=False),
            sa.Column("strategy", sa.String(32), nullable=False),
            sa.Column("reason", sa.Text, nullable=True),
            # when the row was published (a nightly or an intraday refresh of its user)
            sa.Column(REFRESHED_AT, sa.DateTime(timezone=True), nullable=True),
        ]
    else:
        columns = [
            sa.Column("item_id", sa.String(255), nullable=False),
            sa.Column("rank", sa.Integer, nullable=False),
            sa.Column("similar_item_id", sa.String(255), nullable=False),
            sa.Column("score", sa.Float, nullable=False),
        ]
    return sa.Table(name, metadata, *common, *columns)


def log_table(metadata: Any = None) -> Any:
    import sqlalchemy as sa

    metadata = metadata if metadata is not None else sa.MetaData()
    return sa.Table(
        LOG_TABLE,
        metadata,
        sa.Column("publish_id", sa.String(200), primary_key=True),
        # the tables published: workspaces sharing one database publish other tables
        sa.Column("tables", sa.String(600), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("run_date", sa.Date, nullable=False),
        sa.Column("committed_at", sa.String(40), nullable=False),
        # {table: {"rows", "digest"}} of what the publish wrote (tasks/publishing/digest.py)
        sa.Column("digests", sa.Text, nullable=True),
    )


def make_engine(url: str) -> Any:
    """An engine; SQLite gets WAL so readers keep reading the old rows during a swap."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            cursor.close()

    return engine


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` from a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def staging_name(name: str, publish_id: str) -> str:
    """The staging table of one table and one publish (short enough for PostgreSQL)."""
    return f"{name}{STAGING_MARK}{hashlib.sha256(publish_id.encode()).hexdigest()[:12]}"


def _serialise(conn: Any, what: str) -> None:
    """Serialise schema changes and swaps across runs on PostgreSQL (no-op elsewhere:
    SQLite lets one writer at a time in anyway)."""
    import sqlalchemy as sa

    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key(what)})


def _view_sql(name: str) -> str:
    return (
        f'CREATE VIEW "{name}_latest" AS SELECT * FROM "{name}" '
        f'WHERE run_date = (SELECT MAX(run_date) FROM "{name}")'
    )


def prepare_tables(engine: Any, tables: list[tuple[str, str]]) -> None:
    """Create the target tables, their ``<name>_latest`` views and the publish log if
    missing (``tables``: ``(name, kind)`` pairs). Safe when runs do it at once: every
    statement is ``IF NOT EXISTS`` (SQLite), or serialised by an advisory lock
    (PostgreSQL)."""
    import sqlalchemy as sa
    from sqlalchemy.schema import CreateIndex, CreateTable

    metadata = sa.MetaData()
    targets = [log_table(metadata)] + [sql_table(n, k, metadata) for n, k in tables]
    with engine.begin() as conn:
        _serialise(conn, "recpipe:schema")
        for table in targets:
            conn.execute(CreateTable(table, if_not_exists=True))
            for index in table.indexes:
                conn.execute(CreateIndex(index, if_not_exists=True))
        _add_missing_columns(conn, [t for t in targets if STAGING_MARK not in t.name])
        if conn.dialect.name == "sqlite":
            for name, _ in tables:
                conn.execute(
                    sa.text(_view_sql(name).replace("CREATE VIEW", "CREATE VIEW IF NOT EXISTS"))
                )
        else:
            views = set(sa.inspect(conn).get_view_names())
            for name, _ in tables:
                if f"{name}_latest" not in views:
                    conn.execute(sa.text(_view_sql(name)))


def _add_missing_columns(conn: Any, tables: list[Any]) -> None:
    """Columns added to the contract since a table was created (``refreshed_at``) are
    added to it, empty for the rows it holds; nothing else changes."""
    import sqlalchemy as sa
    from sqlalchemy.schema import CreateColumn

    for table in tables:
        have = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
        for column in table.columns:
            if column.name not in have and column.nullable:
                ddl = CreateColumn(column).compile(dialect=conn.dialect)
                conn.execute(sa.text(f'ALTER TABLE "{table.name}" ADD COLUMN {ddl}'))


def _datetimes(values: pd.Series, dialect: Any) -> list:
    """UTC timestamps as the driver takes them (SQLite: SQLAlchemy's text form)."""
    stamps = pd.to_datetime(values, utc=True)
    if dialect.name == "sqlite":
        text = stamps.dt.tz_localize(None).dt.strftime(SQLITE_DATETIME)
        return text.astype(object).where(stamps.notna(), None).tolist()
    return [None if pd.isna(v) else v.to_pydatetime() for v in stamps]


def insert_rows(conn: Any, table: Any, frame: pd.DataFrame, run_date: date) -> int:
    """Bulk insert through the DB-API with plain tuples (COPY on PostgreSQL).

    SQLAlchemy's per-row parameter processing and ``DataFrame.to_dict`` dominate the cost
    for large tables; column lists zipped into tuples are much cheaper.
    """
    import sqlalchemy as sa

    names = [c.name for c in table.columns]
    dialect = conn.engine.dialect
    stamp = run_date.isoformat() if dialect.name == "sqlite" else run_date
    columns: list[list[Any]] = []
    for name in names:
        if name == "run_date":
            columns.append([stamp] * len(frame))
            continue
        if name not in frame.columns:  # a column newer than the rows (e.g. refreshed_at)
            columns.append([None] * len(frame))
            continue
        values = frame[name]
        if isinstance(table.c[name].type, sa.DateTime):
            columns.append(_datetimes(values, dialect))
        elif values.dtype.kind in "if":
            columns.append(values.to_numpy().tolist())
        else:
            columns.append(values.astype(object).where(values.notna(), None).tolist())
    quoted = ", ".join(dialect.identifier_preparer.quote(n) for n in names)
    target = dialect.identifier_preparer.quote(table.name)
    rows = list(zip(*columns, strict=False))
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        # COPY is several times faster than executemany on PostgreSQL.
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {target} ({quoted}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return len(rows)
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {target} ({quoted}) VALUES ({', '.join([marker] * len(names))})"
    for start in range(0, len(rows), 50_000):
        conn.exec_driver_sql(sql, rows[start : start + 50_000])
    return len(rows)


def stage_rows(
    engine: Any,
    name: str,
    kind: str,
    publish_id: str,
    frames: Iterable[pd.DataFrame],
    run_date: date,
) -> int:
    """Load ``frames`` into this publish's staging table of ``name`` (made afresh)."""
    import sqlalchemy as sa

    staging = sql_table(staging_name(name, publish_id), kind, sa.MetaData())
    with engine.begin() as conn:
        staging.drop(conn, checkfirst=True)
        staging.create(conn)
    rows = 0
    for frame in frames:
        with engine.begin() as conn:
            rows += insert_rows(conn, staging, frame, run_date)
    return rows


def commit_rows(
    engine: Any,
    tables: list[tuple[str, str]],
    run_date: date,
    publish_id: str,
    run_id: str,
    keep_runs: int | None,
    before_commit: Callable[[], None] | None = None,
    digests: dict[str, Any] | None = None,
) -> dict[str, list[str]]:
    """Swap every staged table of the publish in one transaction (see the module
    docstring); the dates each table dropped for ``keep_runs``. ``digests``: what each
    table's rows are (rows and content digest), kept in the publish log."""
    import sqlalchemy as sa

    metadata = sa.MetaData()
    log = log_table(metadata)
    dropped: dict[str, list[str]] = {}
    with engine.begin() as conn:
        _serialise(conn, "recpipe:swap")
        for name, kind in tables:
            target = sql_table(name, kind, metadata)
            staging = sql_table(staging_name(name, publish_id), kind, metadata)
            conn.execute(sa.delete(target).where(target.c.run_date == run_date))
            conn.execute(sa.insert(target).from_select(staging.c.keys(), sa.select(staging)))
            dropped[name] = []
            if keep_runs:
                dates = sa.select(target.c.run_date).distinct().order_by(target.c.run_date.desc())
                keep = [r[0] for r in conn.execute(dates.limit(keep_runs))]
                gone = conn.execute(
                    sa.select(target.c.run_date).distinct().where(target.c.run_date.not_in(keep))
                )
                dropped[name] = sorted(str(r[0]) for r in gone)
                conn.execute(sa.delete(target).where(target.c.run_date.not_in(keep)))
        conn.execute(
            sa.insert(log).values(
                publish_id=publish_id,
                run_id=run_id,
                run_date=run_date,
                tables=table_key(tables),
                committed_at=datetime.now(UTC).isoformat(timespec="seconds"),
                digests=json.dumps(digests, sort_keys=True) if digests else None,
            )
        )
        if before_commit is not None:
            before_commit()
    return dropped


def replace_users(
    engine: Any,
    name: str,
    run_date: date,
    user_ids: list[str],
    frame: pd.DataFrame,
    publish_id: str,
    run_id: str,
    before_commit: Callable[[], None] | None = None,
) -> int:
    """Replace the rows of ``user_ids`` for ``run_date`` in recommendations table ``name``
    by ``frame``'s, and log the publish, in ONE transaction: readers see each user's old
    list or new list, never a mix; other users' rows are not touched. Rows deleted."""
    import sqlalchemy as sa

    metadata = sa.MetaData()
    target = sql_table(name, "recommendations", metadata)
    log = log_table(metadata)
    deleted = 0
    with engine.begin() as conn:
        _serialise(conn, "recpipe:swap")
        for start in range(0, len(user_ids), 500):  # bounded parameter lists
            chunk = user_ids[start : start + 500]
            gone = conn.execute(
                sa.delete(target).where(target.c.run_date == run_date, target.c.user_id.in_(chunk))
            )
            deleted += gone.rowcount or 0
        insert_rows(conn, target, frame, run_date)
        conn.execute(
            sa.insert(log).values(
                publish_id=publish_id,
                run_id=run_id,
                run_date=run_date,
                tables=table_key([(name, "recommendations")]),
                committed_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
        )
        if before_commit is not None:
            before_commit()
    return deleted


def table_key(tables: list[tuple[str, str]]) -> str:
    return json.dumps(sorted(name for name, _ in tables))


def is_committed(engine: Any, publish_id: str, tables: list[tuple[str, str]]) -> bool:
    """Did the swap transaction of ``publish_id`` (of these tables) commit?"""
    import sqlalchemy as sa

    log = log_table()
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(LOG_TABLE):
            return False
        found = conn.execute(
            sa.select(log.c.publish_id).where(
                log.c.publish_id == publish_id, log.c.tables == table_key(tables)
            )
        )
        return found.first() is not None


def newest_date(engine: Any, name: str) -> date | None:
    """The newest run date of a published table (None when empty or missing)."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(name):
            return None
        value = conn.execute(sa.text(f'SELECT MAX(run_date) FROM "{name}"')).scalar()
    if value is None:
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def staging_tables(engine: Any) -> list[str]:
    """Every recpipe staging table in the database (this format, and the older
    ``<table>__staging``)."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
    return sorted(n for n in names if STAGING_MARK in n or n.endswith("__staging"))


def drop_tables(engine: Any, names: Iterable[str]) -> list[str]:
    """Drop the named tables if they exist; the ones dropped."""
    import sqlalchemy as sa

    gone = []
    for name in names:
        with engine.begin() as conn:
            if sa.inspect(conn).has_table(name):
                conn.execute(sa.text(f'DROP TABLE "{name}"'))
                gone.append(name)
    return gone


def read_table(
    url: str, name: str, run_date: date | None = None, kind: str = "recommendations"
) -> pd.DataFrame:
    import sqlalchemy as sa

    table = sql_table(name, kind)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            have = (
                {c["name"] for c in inspector.get_columns(name)}
                if inspector.has_table(name)
                else set()
            )
            # a table published before a column was added reads without it
            query = sa.select(*[c for c in table.columns if c.name in have or not have])
            if run_date is not None:
                query = query.where(table.c.run_date == run_date)
            return pd.read_sql(query, conn)
    finally:
        engine.dispose()


# -- erasure (tasks/forget) ---------------------------------------------------------------
def is_own_table(name: str, published: Iterable[str]) -> bool:
    """A published table, or one of its staging tables (this format and the older one)."""
    return any(
        name == t or name.startswith(t + STAGING_MARK) or name == f"{t}__staging" for t in published
    )


def tables_with_column(engine: Any, published: Iterable[str], column: str = "user_id") -> list[str]:
    """The tables among ``published`` and their staging tables that have ``column``
    (other tables of the database belong to others and are left alone)."""
    import sqlalchemy as sa

    published = list(published)
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        return sorted(
            name
            for name in inspector.get_table_names()
            if is_own_table(name, published)
            and column in {c["name"] for c in inspector.get_columns(name)}
        )


def delete_users(
    engine: Any, user_ids: list[str], published: Iterable[str], column: str = "user_id"
) -> dict[str, int]:
    """Delete every row of ``user_ids`` from the ``published`` tables and their staging
    tables that have ``column`` (every kept date), in ONE transaction; then, on SQLite, rewrite
    the file so no free page keeps the old rows
    (``secure_delete`` zeroes what the delete frees, ``VACUUM`` rebuilds the file, the
    WAL is checkpointed and truncated). ``{table: rows deleted}``; idempotent."""
    import sqlalchemy as sa

    if not user_ids:
        return {}
    names = tables_with_column(engine, published, column)
    counts: dict[str, int] = {}
    sqlite = engine.dialect.name == "sqlite"
    with engine.begin() as conn:
        if sqlite:
            conn.exec_driver_sql("PRAGMA secure_delete=ON")
        for name in names:
            table = sa.table(name, sa.column(column))
            result = conn.execute(sa.delete(table).where(table.c[column].in_(list(user_ids))))
            counts[name] = int(result.rowcount or 0)
    compact(engine)
    return counts


def compact(engine: Any) -> None:
    """Give freed space back so deleted rows leave no bytes behind: ``VACUUM`` and a
    truncating WAL checkpoint on SQLite, ``VACUUM`` on PostgreSQL."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM")
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
