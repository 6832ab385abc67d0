"""The erasure ledger: who was forgotten, when and what was removed, without the id.

``<workspace>/forget/ledger.json`` holds one entry per forgotten user: the HMAC-SHA256 of
the id under the workspace's salt (``<workspace>/forget/salt``, 32 random bytes, mode
0600), when the request came, its state (``pending`` until every store is clean, then
``done``) and the counts removed per store. The id itself is never written: a ledger
entry cannot be turned back into the id without the salt, and with the salt only by
guessing ids one by one.

Later ingests go through :func:`screen_events`: the rows of users in the ledger are
dropped before validation and counted, never quarantined (a quarantine row would hold
the id again).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tasks.errors import RecpipeError

FOLDER = "forget"
SALT = "salt"
LEDGER = "ledger.json"
TOMBSTONE_PREFIX = "erased-"


class ForgetError(RecpipeError):
    """An erasure could not be done or checked; the message says which store and why."""


def folder(root: Path) -> Path:
    path = Path(root) / FOLDER
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to a unique temporary file, fsync it, rename it onto ``path`` and
    fsync the folder: a crash leaves the old file or the new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def salt(root: Path) -> bytes:
    """The workspace's salt, created on first use (mode 0600, never rewritten)."""
    path = folder(root) / SALT
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it just now
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
                handle.flush()
                os.fsync(handle.fileno())
    value = path.read_text(encoding="ascii").strip()
    if len(value) != 64:
        raise ForgetError(
            f"{path}: expected the erasure salt (64 hex characters), found {len(value)} "
            "characters; restore it from a backup: without it the ledger cannot recognise "
            "forgotten users"
        )
    return bytes.fromhex(value)


def user_hash(key: bytes, user_id: str) -> str:
    return hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()


def tombstone(user_hash_hex: str) -> str:
    """What replaces the id where a record must keep its place (vocabularies, text)."""
    return f"{TOMBSTONE_PREFIX}{user_hash_hex[:12]}"


def load(root: Path) -> dict[str, Any]:
    path = Path(root) / FOLDER / LEDGER
    if not path.is_file():
        return {"version": 1, "entries": {}}
    try:
        ledger = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(ledger.get("entries"), dict):
            raise ValueError("no 'entries' object")  # noqa: TRY004 - reported as unreadable
    except (OSError, ValueError) as exc:
        raise ForgetError(
            f"{path}: the erasure ledger is unreadable ({exc}); expected the JSON recpipe "
            "writes; restore it from a backup before ingesting again (forgotten users would "
            "come back)"
        ) from exc
    return ledger


def save(root: Path, ledger: dict[str, Any]) -> None:
    data = json.dumps(ledger, indent=1, sort_keys=True).encode("utf-8")
    atomic_write(folder(root) / LEDGER, data)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record(root: Path, hashes: list[str], request_id: str, **fields: Any) -> dict[str, Any]:
    """Create or update the entries of ``hashes`` (the first request time is kept)."""
    ledger = load(root)
    for h in hashes:
        entry = ledger["entries"].get(h) or {"requested_at": now(), "requests": []}
        if request_id not in entry["requests"]:
            entry["requests"].append(request_id)
        entry.update(fields)
        ledger["entries"][h] = entry
    save(root, ledger)
    return ledger


def erased(root: Path) -> set[str]:
    """The hashes of every user in the ledger (pending or done)."""
    return set(load(root)["entries"])


def erased_among(root: Path, user_ids: Any) -> set[str]:
    """The ids among ``user_ids`` whose hash is in the ledger."""
    hashes = erased(root)
    if not hashes:
        return set()
    key = salt(root)
    return {uid for uid in set(user_ids) if isinstance(uid, str) and user_hash(key, uid) in hashes}


def screen_events(root: Path, paths: list[str | None]) -> int:
    """Drop the rows of forgotten users from the Parquet files ``paths`` (ingest's
    interactions and users tables), rewriting only files that hold some; the rows dropped."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not erased(root):
        return 0
    dropped = 0
    for path in paths:
        if not path or not Path(path).is_file():
            continue
        if "user_id" not in pq.read_schema(path).names:
            continue
        ids = pq.read_table(path, columns=["user_id"]).column("user_id")
        gone = erased_among(root, pc.unique(ids).to_pylist())
        if not gone:
            continue
        table = pq.read_table(path)
        keep = pc.invert(
            pc.fill_null(pc.is_in(table.column("user_id"), value_set=_array(gone)), False)
        )
        kept = table.filter(keep)
        dropped += table.num_rows - kept.num_rows
        _write_table(kept, Path(path))
    return dropped


def _array(values: set[str]) -> Any:
    import pyarrow as pa

    return pa.array(sorted(values), pa.string())


def _write_table(table: Any, path: Path) -> None:
    import io

    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    atomic_write(path, buffer.getvalue(), mode=0o600)
