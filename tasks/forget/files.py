"""Rewriting workspace files without the forgotten users.

Every file is rewritten whole into a temporary file, fsynced and renamed over the old
one (``ledger.atomic_write``): a crash leaves the old file or the new one, and a re-run
finds nothing left to change in files already done. What each kind becomes:

* Parquet (raw, validated, quarantine, scores, any other table): rows whose string
  columns hold the id are dropped; in a features folder the rows of the user's dense
  index (``user_idx``) are dropped too, and the vocabulary ``users.parquet`` keeps the
  index with a tombstone instead of the id, so every other index still means the same;
* a model bundle (a folder with a ``users.json`` vocabulary): the user's row of every
  sparse matrix sized to that vocabulary (the training matrix) is emptied, and in the
  relations a social model keeps (``social.npz``) their column too, then the id in
  ``users.json`` becomes its tombstone;
* text and archives: tasks/forget/text.py;
* any other file that holds the id in some form, and any file whose path names the user,
  is deleted (reported by name, the id replaced by its tombstone).

Vocabularies are rewritten last in their folder, so a crash never loses the positions
the matrices still need.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

from tasks.forget.forms import TextMatcher
from tasks.forget.ledger import atomic_write
from tasks.forget.text import holds_any, rewrite_archive, rewrite_text_bytes
from tasks.storage.faults import checkpoint

SQLITE_HEADER = b"SQLite format 3\x00"
VOCABULARIES = ("users.json", "users.parquet")
#: a model's saved relations between users (models/social.py): users x users
USER_BY_USER = ("social.npz",)


def _string_columns(table: Any) -> list[str]:
    import pyarrow as pa

    out = []
    for field in table.schema:
        t = field.type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            out.append(field.name)
    return out


def _matching_rows(column: Any, matcher: TextMatcher) -> Any:
    """A boolean mask: values holding a form of an id (quick substring test, then regex)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    hit = None
    for needle in matcher.owner:
        m = pc.fill_null(pc.match_substring(column, needle), False)
        hit = m if hit is None else pc.or_(hit, m)
    mask = np.zeros(len(column), dtype=bool)
    if hit is None or not pc.any(hit).as_py():
        return mask
    candidates = np.flatnonzero(hit.to_numpy(zero_copy_only=False))
    values = column.take(pa.array(candidates)).to_pylist()
    for i, value in zip(candidates, values, strict=True):
        mask[i] = value is not None and matcher.search(value)
    return mask


def _write_parquet(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    atomic_write(path, buffer.getvalue())


def rewrite_parquet(
    path: Path, matcher: TextMatcher, erased_idx: set[int] | None = None, vocabulary: bool = False
) -> int:
    """Drop the rows of the forgotten users (or, in a vocabulary, replace the id by its
    tombstone); return the rows dropped or replaced."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    mask = np.zeros(table.num_rows, dtype=bool)
    hits: dict[str, Any] = {}
    for name in _string_columns(table):
        m = _matching_rows(table.column(name), matcher)
        if m.any():
            hits[name] = m
            mask |= m
    if erased_idx and "user_idx" in table.column_names and not vocabulary:
        idx = table.column("user_idx").to_numpy(zero_copy_only=False)
        mask |= np.isin(idx, np.fromiter(erased_idx, dtype=np.int64))
    n = int(mask.sum())
    if not n:
        return 0
    if vocabulary:
        for name, m in hits.items():
            values = table.column(name).to_pylist()
            for i in np.flatnonzero(m):
                values[i] = matcher.replace(values[i])[0]
            position = table.schema.get_field_index(name)
            table = table.set_column(
                position, table.schema.field(name), pa.array(values, table.schema.field(name).type)
            )
    else:
        table = table.filter(pa.array(~mask))
    _write_parquet(table, path)
    return n


def vocabulary_positions(folder: Path, user_ids: set[str]) -> set[int]:
    """Positions of ``user_ids`` in the folder's vocabulary (users.parquet or users.json)."""
    import pyarrow.parquet as pq

    out: set[int] = set()
    parquet, listing = folder / "users.parquet", folder / "users.json"
    if parquet.is_file() and {"user_id", "user_idx"} <= set(pq.read_schema(parquet).names):
        table = pq.read_table(parquet, columns=["user_id", "user_idx"]).to_pydict()
        out |= {
            i for u, i in zip(table["user_id"], table["user_idx"], strict=True) if u in user_ids
        }
    if listing.is_file():
        try:
            values = json.loads(listing.read_text(encoding="utf-8"))
        except ValueError:
            values = None
        if isinstance(values, list):
            out |= {i for i, u in enumerate(values) if u in user_ids}
    return out


def _vocabulary_size(folder: Path) -> int | None:
    listing = folder / "users.json"
    if listing.is_file():
        try:
            values = json.loads(listing.read_text(encoding="utf-8"))
            return len(values) if isinstance(values, list) else None
        except ValueError:
            return None
    return None


def rewrite_npz_rows(path: Path, rows: set[int], n_users: int | None) -> int:
    """Empty ``rows`` of a sparse matrix whose first dimension is the vocabulary's size;
    in a relations matrix (``social.npz``, users x users) their columns too, so no other
    user keeps a link to a forgotten one."""
    import numpy as np
    import scipy.sparse as sp

    try:
        matrix = sp.load_npz(path).tocsr()
    except (ValueError, KeyError, OSError):
        return 0
    if n_users is None or matrix.shape[0] != n_users:
        return 0
    live = [r for r in rows if r < matrix.shape[0] and matrix.indptr[r + 1] > matrix.indptr[r]]
    linked = 0
    targets = np.fromiter((r for r in rows if r < n_users), dtype=np.int64)
    if path.name in USER_BY_USER and matrix.shape[1] == n_users:
        linked = int(np.isin(matrix.indices, targets).sum())
    if not live and not linked:
        return 0
    scale = np.ones(matrix.shape[0])
    scale[live] = 0.0
    matrix = (sp.diags(scale) @ matrix).tocsr()
    if linked:  # every forgotten user's column, with a row of their own or not
        columns = np.ones(matrix.shape[1])
        columns[targets] = 0.0
        matrix = (matrix @ sp.diags(columns)).tocsr()
    matrix.eliminate_zeros()
    buffer = io.BytesIO()
    sp.save_npz(buffer, matrix)
    atomic_write(path, buffer.getvalue())
    return len(live) + linked


def sweep(
    root: Path, matcher: TextMatcher, needles: list[bytes], skip: set[Path]
) -> tuple[Counter, list[str]]:
    """Rewrite every file under ``root`` except ``skip`` (and SQLite files); return the
    rows/occurrences removed per area and the files deleted because they could not be
    rewritten. Deepest folders first and vocabularies last in theirs, so a vocabulary is
    rewritten only after everything indexed by it."""
    user_ids = set(matcher.tombstones)
    removed: Counter = Counter()
    deleted: list[str] = []
    folders = sorted(
        {p.parent for p in root.rglob("*") if p.is_file()},
        key=lambda f: (-len(f.parts), f.as_posix()),
    )
    vocabularies: dict[Path, tuple[set[int], int | None]] = {}
    for number, folder in enumerate(folders):
        if number == len(folders) // 2:
            checkpoint("forget:files-half")
        if any(folder == s or s in folder.parents for s in skip):
            continue
        positions, n_users = _nearest_vocabulary(root, folder, user_ids, vocabularies)
        files = sorted(
            (p for p in folder.iterdir() if p.is_file() and p not in skip),
            key=lambda p: (p.name in VOCABULARIES, p.name),
        )
        for path in files:
            relative = path.relative_to(root).as_posix()
            named = matcher.search(relative)  # a file named for the user is theirs
            n = None if named else _rewrite_file(path, matcher, needles, positions, n_users)
            if n is None:
                path.unlink(missing_ok=True)
                deleted.append(matcher.replace(relative)[0])
            elif n:
                removed[_area(root, path)] += n
    return removed, deleted


def _nearest_vocabulary(
    root: Path, folder: Path, user_ids: set[str], seen: dict[Path, tuple[set[int], int | None]]
) -> tuple[set[int], int | None]:
    """The forgotten users' positions in the vocabulary of ``folder`` or its nearest
    ancestor under ``root`` that has one (read once, before anything is rewritten)."""
    for candidate in [folder, *folder.parents]:
        if candidate != root and root not in candidate.parents:
            break
        if candidate not in seen:
            if not any((candidate / name).is_file() for name in VOCABULARIES):
                continue
            seen[candidate] = (
                vocabulary_positions(candidate, user_ids),
                _vocabulary_size(candidate),
            )
        return seen[candidate]
    return set(), None


def _rewrite_file(
    path: Path,
    matcher: TextMatcher,
    needles: list[bytes],
    positions: set[int],
    n_users: int | None,
) -> int | None:
    if path.name.startswith(".") and path.name.endswith(".tmp"):
        path.unlink(missing_ok=True)  # a killed writer's leftover
        return 0
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head == SQLITE_HEADER:
        return 0  # databases: tasks/forget/stores.py
    if head.startswith(b"PAR1"):
        return rewrite_parquet(path, matcher, positions, vocabulary=path.name == "users.parquet")
    if path.suffix == ".npz":
        n = rewrite_npz_rows(path, positions, n_users) if positions else 0
        rest = rewrite_archive(path, matcher)
        return None if rest is None else n + rest
    if _is_container(path, head):
        return rewrite_archive(path, matcher)
    if not holds_any(path, needles):
        return 0
    result = rewrite_text_bytes(path.read_bytes(), matcher)
    if result is None:
        return None
    if result[1]:
        atomic_write(path, result[0], mode=path.stat().st_mode & 0o777)
    return result[1]


def _is_container(path: Path, head: bytes) -> bool:
    return head.startswith((b"PK\x03\x04", b"\x1f\x8b"))


def _area(root: Path, path: Path) -> str:
    parts = path.relative_to(root).parts
    if parts[0] == "mlflow" and len(parts) > 1:
        return f"mlflow/{parts[1]}"
    return parts[0]
