"""A lock that is busy says what it waits for, once, before it waits."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from tasks.forget.run import erasure_lock
from tasks.storage.locks import LockError, holder_info, run_lock

DAY = date(2026, 3, 2)


def test_a_run_waiting_for_a_date_names_the_run_that_holds_it(tmp_path: Path, capsys) -> None:
    with (
        run_lock(tmp_path, DAY, 0, holder_info("night-1")),
        pytest.raises(LockError),
        run_lock(tmp_path, DAY, 1, holder_info("night-2")),
    ):
        pass
    err = capsys.readouterr().err
    assert err.count("recpipe: waiting for a recpipe run for 2026-03-02 to finish") == 1
    assert "flow run night-1" in err and "waiting up to 1 s" in err


def test_forget_waiting_for_a_night_names_the_night(tmp_path: Path, capsys) -> None:
    with (
        run_lock(tmp_path, DAY, 0, holder_info("night-1")),
        erasure_lock(tmp_path, 0, shared=True, holder={}),
        pytest.raises(LockError),
        erasure_lock(tmp_path, 1, shared=False, holder={}),
    ):
        pass
    err = capsys.readouterr().err
    assert "recpipe: waiting for a nightly run to finish: the night of 2026-03-02" in err
    assert "flow run night-1" in err


def test_a_free_lock_says_nothing(tmp_path: Path, capsys) -> None:
    with run_lock(tmp_path, DAY, 5, holder_info("night-1")):
        pass
    assert capsys.readouterr().err == ""
