"""``recpipe forget --verify``: search every byte of the workspace for an id.

Every file under the workspace is read whole and searched for each form of the id
(tasks/forget/forms.py), and so is what compression hides: the values of every Parquet
column (pages are compressed), every member of a zip archive (``.npz``, ``.keras``,
``.zip``, nested), every gzip stream. SQLite files are searched byte by byte (free pages
included) and, where something is found, table by table, to say where. The publish
database when it is not a file (PostgreSQL), and the Prefect database when it is
outside the workspace, are searched too. A finding is ``(where, form, count)``.
"""

from __future__ import annotations

import gzip
import io
import sqlite3
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tasks.forget.forms import Form, count_in, forms_of

MAX_DEPTH = 4


@dataclass(frozen=True)
class Finding:
    where: str
    form: str
    count: int


def scan_bytes(where: str, data: bytes, forms: list[Form], depth: int = 0) -> list[Finding]:
    found = [Finding(where, name, n) for name, n in count_in(data, forms, False).items()]
    if depth >= MAX_DEPTH:
        return found
    if data.startswith(b"PAR1"):
        found += scan_parquet(where, data, forms)
    elif data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for info in archive.infolist():
                    found += scan_bytes(
                        f"{where}!{info.filename}", archive.read(info), forms, depth + 1
                    )
        except (zipfile.BadZipFile, OSError, NotImplementedError) as exc:
            found.append(Finding(where, f"unreadable zip ({exc})", 1))
    elif data.startswith(b"\x1f\x8b"):
        try:
            found += scan_bytes(f"{where}!gunzip", gzip.decompress(data), forms, depth + 1)
        except (OSError, EOFError) as exc:
            found.append(Finding(where, f"unreadable gzip ({exc})", 1))
    return found


def scan_parquet(where: str, data: bytes, forms: list[Form]) -> list[Finding]:
    """Every value of every column (read with pyarrow: pages are compressed), as text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        return [Finding(where, f"unreadable parquet ({exc})", 1)]
    found = []
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            counts = _count_in_strings(column, forms)
        elif pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            blob = b"\x00".join(v for v in column.to_pylist() if v is not None)
            counts = count_in(blob, forms)
        else:
            continue
        found += [Finding(f"{where} column {name}", form, n) for form, n in counts.items()]
    return found


def _count_in_strings(column: object, forms: list[Form]) -> dict[str, int]:
    """Forms in a string column: a vectorised substring test, then the exact count on the
    few values that passed it (a 5M-row column is never turned into Python strings)."""
    import pyarrow.compute as pc

    counts: dict[str, int] = {}
    for form in forms:
        try:
            needle = form.needle.decode("utf-8")
        except UnicodeDecodeError:
            continue
        mask = pc.fill_null(pc.match_substring(column, needle), False)
        if not pc.any(mask).as_py():
            continue
        values = pc.filter(column, mask).to_pylist()
        blob = b"\x00".join(v.encode("utf-8") for v in values)
        n = count_in(blob, [form]).get(form.name, 0)
        if n:
            counts[form.name] = n
    return counts


def scan_sqlite_tables(path: Path, forms: list[Form]) -> list[Finding]:
    """Where in a SQLite database the forms are (live rows only; the file scan covers
    free pages and the WAL)."""
    found: list[Finding] = []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return found
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            try:
                rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            except sqlite3.Error:
                continue
            blob = b"\x00".join(
                v if isinstance(v, bytes) else str(v).encode("utf-8")
                for row in rows
                for v in row
                if v is not None
            )
            for form, n in count_in(blob, forms).items():
                found.append(Finding(f"{path} table {table}", form, n))
    finally:
        conn.close()
    return found


def scan_file(path: Path, forms: list[Form], label: str) -> list[Finding]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [Finding(label, f"unreadable ({exc})", 1)]
    found = scan_bytes(label, data, forms)
    if found and data.startswith(b"SQLite format 3\x00"):
        found += scan_sqlite_tables(path, forms)
    return found


def scan_database(url: str, forms: list[Form], published: list[str]) -> list[Finding]:
    """Every value of the ``published`` tables of a (PostgreSQL) database, their staging
    tables and the publish log, as text."""
    import sqlalchemy as sa

    from tasks.storage.database import LOG_TABLE, is_own_table, make_engine

    engine = make_engine(url)
    found = []
    try:
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
            for table in [n for n in names if is_own_table(n, [*published, LOG_TABLE])]:
                rows = conn.execute(sa.text(f'SELECT * FROM "{table}"')).fetchall()
                blob = b"\x00".join(
                    str(v).encode("utf-8") for row in rows for v in row if v is not None
                )
                for form, n in count_in(blob, forms).items():
                    found.append(Finding(f"database table {table}", form, n))
    finally:
        engine.dispose()
    return found


def verify(
    root: Path,
    user_id: str,
    *,
    database_url: str | None = None,
    extra_files: list[Path] | None = None,
    tables: tuple[str, ...] = ("recommendations", "similar_items"),
) -> list[Finding]:
    """Every occurrence of ``user_id`` (any form) in the workspace at ``root``, in a
    database that is not a workspace file, and in ``extra_files`` (e.g. the Prefect
    database of a server outside the workspace)."""
    from tasks.forget.stores import prefect_database

    root = Path(root).resolve()
    forms = forms_of(user_id)
    found: list[Finding] = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        for form, n in count_in(relative.encode("utf-8"), forms).items():
            found.append(Finding(relative, f"{form} in the path", n))
        if path.is_file():
            found += scan_file(path, forms, relative)
    outside = [*(extra_files or [])]
    prefect = prefect_database()
    if prefect is not None:
        outside.append(prefect)
    for path in outside:
        path = Path(path).resolve()
        if root in path.parents:
            continue
        for suffix in ("", "-wal", "-journal"):
            candidate = Path(f"{path}{suffix}")
            if candidate.is_file():
                found += scan_file(candidate, forms, str(candidate))
    if database_url and not database_url.startswith("sqlite"):
        found += scan_database(database_url, forms, list(tables))
    return found
