"""recpipe doctor on damage made by hand, as a user's disk or an operator makes it: the
check exits 1 naming it, ``--repair`` brings both stores to equal digests for every kept
date, and the next publish agrees."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from flows.bench import publish_faults as faults
from flows.cli import main
from tasks.errors import PublishError
from tasks.publish import publish, rollback_date
from tasks.publishing.digest import digest_of
from tasks.publishing.stores import RECOMMENDATIONS, SIMILAR_ITEMS, read_database_table
from tasks.publishing.verify import verify
from tasks.storage import journal, lake

D1, D2, D3 = date(2026, 5, 1), date(2026, 5, 2), date(2026, 5, 3)
RECS, SIM = "recommendations", "similar_items"
TABLES = [(RECS, RECOMMENDATIONS), (SIM, SIMILAR_ITEMS)]


@pytest.fixture
def case(tmp_path: Path) -> faults.Case:
    """Two published nights (D1, D2) in a workspace with the default table names."""
    ws = tmp_path / "ws"
    ws.mkdir()
    case = faults.Case(ws, f"sqlite:///{ws}/recpipe.db", RECS, SIM)
    faults.publish(case, "night1", D1, 30, 0)
    faults.publish(case, "night2", D2, 30, 1)
    return case


def doctor(case: faults.Case, capsys, *args: str) -> tuple[int, str]:
    code = main(["--workspace", str(case.workspace), "doctor", *args])
    return code, capsys.readouterr().out


def assert_repaired(case: faults.Case, capsys, named: str, backup: bool = True) -> None:
    """Doctor names the damage and exits 1; the repair levels every date (its digests
    equal in both stores and equal to the rows read independently); the next night's
    publish passes its check and agrees."""
    code, out = doctor(case, capsys)
    assert code == 1, out
    assert named in out and "recpipe doctor --repair" in out
    code, out = doctor(case, capsys, "--repair")
    assert code == 0, out
    assert ("backup of what was replaced" in out) == backup
    report = verify(case.stores(), TABLES)
    assert report.agrees and report.dates
    for check in report.dates:
        assert check.database == check.lake
    for name in (RECS, SIM):  # the same run's rows in both stores, date by date
        snap = faults.snapshot(case)
        runs = {day: found[1] for day, found in snap[f"database/{name}"].items()}
        assert runs == {day: found[1] for day, found in snap[f"lake/{name}"].items()}
    _next_night(case)
    assert verify(case.stores(), TABLES).agrees


def _next_night(case: faults.Case) -> None:
    outputs = faults.write_night(case.workspace / "in" / "night3", "night3", D3, 30, 3)
    outputs = [o.__class__(n, o.kind, o.source) for o, (n, _) in zip(outputs, TABLES, strict=True)]
    publish(str(case.workspace), case.url, "night3", D3, outputs, 7, None, 168.0)


def test_whole_stores_agree_and_digests_match_the_publish_log(case, capsys) -> None:
    code, out = doctor(case, capsys)
    assert code == 0, out
    assert "the stores agree on 2 date(s)" in out
    report = verify(case.stores(), TABLES)
    assert all(c.published == c.database == c.lake for c in report.dates)
    rows = lake.read_table(case.stores().lake(RECS), D1)
    import pyarrow as pa

    expected = digest_of(
        pa.Table.from_pandas(rows.astype(object), preserve_index=False), RECOMMENDATIONS
    )
    assert next(c for c in report.dates if c.table == RECS and c.day == D1).lake == expected


def test_newest_delta_log_entry_emptied_after_a_rollback(case, capsys) -> None:
    faults.publish(case, "night2b", D2, 30, 7)
    rollback_date(case.stores(), D2, TABLES)  # D2 back to night2's rows
    log = case.stores().lake(RECS) / "_delta_log"
    newest = sorted(log.glob("*.json"))[-1]
    newest.write_text("")  # the lake now serves night2b's rows, the database night2's
    assert_repaired(case, capsys, "is unreadable: the file is empty")
    rows = faults.snapshot(case)[f"lake/{RECS}"][D2.isoformat()][1]
    assert rows == {"night2"}


def test_a_lake_data_file_deleted(case, capsys) -> None:
    part = next((case.stores().lake(RECS) / f"run_date={D1}").glob("*.parquet"))
    part.unlink()
    assert_repaired(case, capsys, "data file(s) missing")


def test_the_sqlite_file_with_pages_overwritten(case, capsys) -> None:
    path = case.workspace / "recpipe.db"
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        for page in range(2, size // 4096, 2):
            handle.seek(page * 4096 + 100)
            handle.write(os.urandom(2000))
    assert_repaired(case, capsys, "database")
    assert list((case.workspace / "backups").glob("doctor-*/database/recpipe.db"))


def test_the_journal_deleted_after_the_database_commit(case, capsys) -> None:
    code = faults.run_child(case, "tonight", 30, {"RECPIPE_FAULT_AT": "publish:database-committed"})
    assert code == -9
    pid = journal.publish_id(D2, "tonight")
    journal.path_for(case.stores().journal, pid).unlink()  # an operator's clean-up
    code, out = doctor(case, capsys)
    assert code == 1 and f"the lake lacks publish {pid}" in out
    assert f"kept staged files: {pid}" in out
    assert (case.stores().staged / pid).is_dir()  # still there for the lake
    assert_repaired(case, capsys, pid)
    assert not (case.stores().staged / pid).exists()  # the lake is level: swept
    assert faults.snapshot(case)[f"lake/{RECS}"][D2.isoformat()][1] == {"tonight"}


def test_a_night_stops_before_its_commit_point_when_kept_dates_disagree(case) -> None:
    part = next((case.stores().lake(SIM) / f"run_date={D1}").glob("*.parquet"))
    part.unlink()
    with pytest.raises(PublishError, match="recpipe doctor --repair") as failed:
        _next_night(case)
    assert f"{SIM} {D1}" in str(failed.value) and "nothing was published" in str(failed.value)
    published = read_database_table(case.url, RECS)["run_date"].astype(str).str[:10]
    assert set(published) == {D1.isoformat(), D2.isoformat()}
    assert not journal.path_for(case.stores().journal, journal.publish_id(D3, "night3")).exists()


def test_a_database_lost_is_rebuilt_from_the_lake(case, capsys) -> None:
    shutil.move(case.workspace / "recpipe.db", case.workspace / "elsewhere.db")
    assert_repaired(case, capsys, "the database holds none of the lake's dates", backup=False)


def test_a_night_leaves_a_date_another_run_is_publishing_to_that_run(case) -> None:
    from tasks.storage.locks import holder_info, run_lock

    part = next((case.stores().lake(SIM) / f"run_date={D1}").glob("*.parquet"))
    part.unlink()  # as a run of D1 between its database and lake commits would look
    with run_lock(case.workspace / "locks", D1, 0, holder_info("night-of-d1")):
        _next_night(case)
    published = read_database_table(case.url, RECS)["run_date"].astype(str).str[:10]
    assert D3.isoformat() in set(published)
