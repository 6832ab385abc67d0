"""Database tables of the published output, and engines for any SQLAlchemy URL.

SQLite (the default, in the workspace) is opened in WAL mode so readers keep
reading the previous rows while a new run date is swapped in; PostgreSQL needs
nothing special (MVCC).
"""

from __future__ import annotations

from typing import Any


def sql_table(name: str, kind: str = "recommendations", metadata: Any = None) -> Any:
    import sqlalchemy as sa

    metadata = metadata if metadata is not None else sa.MetaData()
    common = [
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("run_date", sa.Date, nullable=False, index=not name.endswith("__staging")),
    ]
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
        ]
    else:
        columns = [
            sa.Column("item_id", sa.String(255), nullable=False),
            sa.Column("rank", sa.Integer, nullable=False),
            sa.Column("similar_item_id", sa.String(255), nullable=False),
            sa.Column("score", sa.Float, nullable=False),
        ]
    return sa.Table(name, metadata, *common, *columns)


def make_engine(url: str) -> Any:
    """An engine; SQLite gets WAL so readers keep reading the old rows during a swap."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    return engine
