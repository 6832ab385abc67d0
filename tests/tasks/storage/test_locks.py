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


def test_second_run_waits_for_the_first_when_told_to(tmp_path: Path) -> None:
    released = threading.Event()

    def first() -> None:
        with run_lock(tmp_path, DAY, 0, holder_info("first")):
            time.sleep(1.0)
        released.set()

    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(0.3)
    start = time.monotonic()
    with run_lock(tmp_path, DAY, 30, holder_info("second")):
        assert released.is_set()
    assert time.monotonic() - start < 10
    thread.join()


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
