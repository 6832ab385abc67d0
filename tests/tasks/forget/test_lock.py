"""The erasure lock: nights share it, a forget holds it alone."""

from __future__ import annotations

import pytest

from tasks.forget.run import erasure_lock
from tasks.storage.locks import LockError


def _forget(tmp_path) -> None:
    with erasure_lock(tmp_path, 0, shared=False, holder={}):
        pass


def _night(tmp_path) -> None:
    with erasure_lock(tmp_path, 0, shared=True, holder={}):
        pass


def test_nights_share_the_lock_and_a_forget_waits_for_them(tmp_path) -> None:
    with (
        erasure_lock(tmp_path, 0, shared=True, holder={}),
        erasure_lock(tmp_path, 0, shared=True, holder={}),  # two nights at once
        pytest.raises(LockError, match="a nightly run holds"),
    ):
        _forget(tmp_path)
    _forget(tmp_path)  # released


def test_a_night_waits_for_a_forget(tmp_path) -> None:
    with (
        erasure_lock(tmp_path, 0, shared=False, holder={"pid": 1}),
        pytest.raises(LockError, match="an erasure"),
    ):
        _night(tmp_path)
    _night(tmp_path)
