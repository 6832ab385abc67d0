"""Run locks: one run per date; the second waits (bounded) or fails; no stale locks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pytest

from tasks.storage.locks import LockError, database_lock, held_locks, holder_info, run_lock

DAY = date(2026, 3, 2)


def test_second_run_for_the_same_date_fails_naming_the_holder(tmp_path: Path) -> None:
    with run_lock(tmp_path, DAY, 0, holder_info("first-run")):
        with (
            pytest.raises(LockError) as caught,
            run_lock(tmp_path, DAY, 0, holder_info("second-run")),
        ):
            pytest.fail("two runs held the same date")
        message = str(caught.value)
        assert "a recpipe run for 2026-03-02 is already running" in message
        assert "first-run" in message and "stopped before writing anything" in message
        with run_lock(tmp_path, date(2026, 3, 3), 0, holder_info("other-date")):
            pass  # other dates are free
        assert held_locks(tmp_path)["run_date=2026-03-02"]["flow_run_id"] == "first-run"
    assert held_locks(tmp_path) == {}
    with run_lock(tmp_path, DAY, 0, holder_info("third-run")):
        pass  # released on exit


def test_second_run_waits_for_the_first_when_told_to(tmp_path: Path, monkeypatch) -> None:
    """The first run holds the date until the second has retried three times (about
    0.75 s, longer than one retry): the second waits, then gets the lock once it is free."""
    from tasks.storage import locks

    retries, order = [], []
    held, waited = threading.Event(), threading.Event()

    class CountingTime:  # the lock module's clock; its sleeps are the second run's retries
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def sleep(seconds: float) -> None:
            retries.append(seconds)
            if len(retries) >= 3:
                waited.set()
            time.sleep(seconds)

    monkeypatch.setattr(locks, "time", CountingTime)

    def first() -> None:
        with run_lock(tmp_path, DAY, 0, holder_info("first")):
            held.set()
            waited.wait(30)
            order.append("first released")

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert held.wait(30), "the first run never took the lock"
        with run_lock(tmp_path, DAY, 30, holder_info("second")):
            order.append("second acquired")
            assert held_locks(tmp_path)["run_date=2026-03-02"]["flow_run_id"] == "second"
    finally:
        waited.set()
        thread.join(timeout=30)
    assert order == ["first released", "second acquired"]
    assert len(retries) >= 3 and waited.is_set()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    code = (
        "import sys, time; from datetime import date; from pathlib import Path;"
        "from tasks.storage.locks import run_lock, holder_info;"
        f"ctx = run_lock(Path({str(tmp_path)!r}), date(2026, 3, 2), 0, holder_info('doomed'));"
        "ctx.__enter__(); print('held', flush=True); time.sleep(60)"
    )
    root = Path(__file__).resolve().parents[3]
    child = subprocess.Popen(
        [sys.executable, "-c", code], cwd=root, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "held"
        with (
            pytest.raises(LockError, match="doomed"),
            run_lock(tmp_path, DAY, 0, holder_info("blocked")),
        ):
            pass
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        with run_lock(tmp_path, DAY, 0, holder_info("after-the-crash")):
            pass
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_postgres_advisory_lock_excludes_a_second_publisher() -> None:
    url = os.environ.get("RECPIPE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("RECPIPE_TEST_POSTGRES_URL not set (CI sets it; see .ci/run)")
    with database_lock(url, "recommendations", DAY, 0):
        with (
            pytest.raises(LockError, match="advisory lock"),
            database_lock(url, "recommendations", DAY, 0),
        ):
            pass
        with database_lock(url, "recommendations", date(2026, 3, 3), 0):
            pass
    with database_lock(url, "recommendations", DAY, 0):
        pass
