"""Shared workspace files: locked read-modify-write loses no update; temp names never collide."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from tasks.storage.locks import LockError
from tasks.storage.shared_files import (
    locked,
    replace_atomically,
    temp_path,
    update_json,
    write_json,
)

THREADS = 8
UPDATES = 25


def test_concurrent_updates_lose_no_entry(tmp_path: Path) -> None:
    """Each thread appends its own keys; with the read outside the lock, most would be lost
    (every writer would write back the file it read before the others wrote)."""
    path = tmp_path / "history.json"
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def add(key: str) -> object:
        def change(data: dict) -> dict:
            threading.Event().wait(0.001)  # widen the read-to-write window
            return {**data, key: len(data)}

        return change

    def worker(t: int) -> None:
        try:
            start.wait()
            for i in range(UPDATES):
                update_json(path, add(f"t{t}-{i}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    data = json.loads(path.read_text(encoding="utf-8"))
    assert set(data) == {f"t{t}-{i}" for t in range(THREADS) for i in range(UPDATES)}
    assert sorted(data.values()) == list(range(THREADS * UPDATES))  # one at a time
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json", "history.json.lock"]


def test_an_unreadable_file_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    path.write_text("{ not json", encoding="utf-8")
    assert update_json(path, lambda data: {**data, "a": 1}) == {"a": 1}
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": 1}


def test_temp_names_are_unique_siblings(tmp_path: Path) -> None:
    path = tmp_path / "volume_history.json"
    names = {temp_path(path) for _ in range(100)}
    assert len(names) == 100
    for name in names:
        assert name.parent == tmp_path
        assert re.fullmatch(r"volume_history\.json\.\d+\.[0-9a-f]{32}\.tmp", name.name)


def test_a_failed_write_keeps_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = write_json({"old": True}, tmp_path / "manifest.json")

    def fail(tmp: Path) -> None:
        tmp.write_text("half", encoding="utf-8")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_atomically(path, fail)
    assert json.loads(path.read_text(encoding="utf-8")) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_a_lock_held_too_long_says_which_file_and_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "volume_history.json"
    with locked(path) as lock:
        assert lock == tmp_path / "volume_history.json.lock"
        with pytest.raises(LockError) as caught, locked(path, 0):
            pytest.fail("two holders of one file's lock")
    message = str(caught.value)
    assert "volume_history.json.lock within 0 s" in message and "fuser" in message
    with locked(path, 0):
        pass  # released on exit
