"""Kill -9 a real publishing process at named steps; race two dates (SQLite, PostgreSQL).

The full matrix (every step, both stores) is ``recpipe bench publish-faults``; these are
the steps around the commit point, where a mistake would lose or split rows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.bench import publish_faults as faults
from tests.tasks.test_publish import postgres_or_skip

STEPS = [
    "publish:database-staged",
    "publish:database-commit",
    "publish:database-committed",
    "publish:lake-{recs}-committed",
]


def _url(store: str) -> str | None:
    return None if store == "sqlite" else postgres_or_skip()


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
@pytest.mark.parametrize("point", STEPS)
def test_a_kill_at_each_step_loses_nothing_and_recovery_makes_the_stores_agree(
    tmp_path: Path, store: str, point: str
) -> None:
    row = faults.kill_case(tmp_path, _url(store), point, users=60)
    assert row["killed"], "the child was not killed at the checkpoint"
    assert (row["rows lost"], row["torn"], row["disagree"], row["leftovers"]) == (0, 0, 0, 0), row
    expected = (
        "rolled back" if faults.POINTS.index(point) < faults.COMMIT_INDEX else "rolled forward"
    )
    assert row["recovery"][0] == expected


def test_the_matrix_sees_split_stores_when_nothing_recovers(tmp_path: Path, monkeypatch) -> None:
    """The matrix can fail: without recovery, a kill after the database commit leaves the
    lake on the old rows, and the matrix counts the disagreement."""
    monkeypatch.setattr("tasks.publishing.recovery.recover", lambda *a, **k: [])
    row = faults.kill_case(tmp_path, None, "publish:database-committed", users=20)
    assert row["disagree"] == 2 and row["leftovers"] > 0  # both lake tables, journal + staging


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_two_dates_publishing_at_once_keep_all_their_rows(tmp_path: Path, store: str) -> None:
    result = faults.race(tmp_path, _url(store), users=60)
    assert result["both paused together"]
    assert result["failed runs"] == 0, result["errors"]
    assert result["tables missing rows"] == 0 and result["leftovers"] == 0
