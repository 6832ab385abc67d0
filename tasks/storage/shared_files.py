"""Workspace files that several runs write: a short lock, a unique temp name, one rename.

Nights of different dates run at the same time (``tasks/storage/locks.py`` serializes only the
runs of one date), so a file they share, such as ``validation/volume_history.json`` or
the landing manifest, is changed under an flock on a sibling ``<name>.lock``, held from
the read to the write so no run loses another's entry. Every write, shared or not, goes
through ``<name>.<pid>.<uuid>.tmp`` and ``os.replace``: a reader sees the old file or the
new one, never half of one, and no two writers (nor a crashed writer's leftover) ever
share a temp file.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from tasks.storage.locks import LockError, file_lock, holder_info

WAIT_SECONDS = 120.0  # the writes under these locks take milliseconds to seconds

log = logging.getLogger(__name__)


def temp_path(path: Path) -> Path:
    """A temp name beside ``path`` that no other writer uses: ``<name>.<pid>.<uuid>.tmp``."""
    return path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")


def replace_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(temp)``, then rename the temp file onto ``path`` (removed on failure)."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(data: Any, path: Path, *, sort_keys: bool = False) -> Path:
    text = json.dumps(data, indent=1, sort_keys=sort_keys, default=str)
    return replace_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def lock_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".lock")


@contextmanager
def locked(
    path: Path, wait_seconds: float = WAIT_SECONDS, *, what: str | None = None
) -> Iterator[Path]:
    """Hold the flock of ``path`` (a file or a folder; on ``<name>.lock`` beside it) for one
    short change.

    Raises LockError when another process holds it for more than ``wait_seconds``.
    """
    lock = lock_path(path)
    what = what or str(path)
    stack = ExitStack()
    try:
        stack.enter_context(file_lock(lock, wait_seconds, holder_info(None, file=what), what))
    except LockError as exc:
        raise LockError(
            f"{what}: could not lock {lock} within {wait_seconds:g} s; expected other recpipe "
            "runs to hold it only while they update the file; find the process holding it "
            f"('fuser {lock}'; while held, the file names its pid), wait for it or end it, "
            "then re-run"
        ) from exc
    with stack:
        yield lock


def load_json(path: Path) -> dict:
    """The JSON object in ``path``; ``{}`` when the file is missing or unreadable (logged)."""
    if not Path(path).is_file():
        return {}
    try:
        return dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, TypeError):
        log.warning("%s unreadable; starting it afresh", path)
        return {}


def update_json(
    path: Path,
    change: Callable[[dict], dict],
    *,
    load: Callable[[Path], dict] = load_json,
    wait_seconds: float = WAIT_SECONDS,
) -> dict:
    """Read ``path``, apply ``change`` and write the result, all under the file's lock, so
    concurrent updates each see the others' (no lost update). Returns what was written."""
    with locked(path, wait_seconds):
        data = change(load(path))
        write_json(data, path)
    return data
