"""Publishing to the lake (Delta) and a database, SQLite and a real PostgreSQL server."""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import replace
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tasks import publish as pub
from tasks.errors import PublishError
from tasks.publishing import recovery
from tasks.publishing.champion import ChampionMove
from tasks.publishing.stores import (
    RECOMMENDATIONS,
    SIMILAR_ITEMS,
    Output,
    Stores,
    read_database_table,
    read_lake_table,
)
from tasks.scoring.table import recommendations_table
from tasks.storage import database as db
from tasks.storage import journal, lake

POSTGRES_URL = os.environ.get(
    "RECPIPE_TEST_POSTGRES_URL", "postgresql+psycopg://recpipe:recpipe@127.0.0.1:5432/recpipe_test"
)


def _postgres_available() -> str | None:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means: no server to test against
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


def postgres_or_skip() -> str:
    problem = _postgres_available()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required in CI: {problem}")
        pytest.skip(f"no PostgreSQL server at {POSTGRES_URL} ({problem}); .ci/run starts one")
    return POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request, tmp_path):
    """``(Stores, recommendations table name, similar table name)``."""
    tag = uuid.uuid4().hex[:8]
    names = (f"recs_{tag}", f"sim_{tag}")
    if request.param == "sqlite":
        yield Stores(tmp_path, f"sqlite:///{tmp_path}/recs.db"), *names
        return
    url = postgres_or_skip()
    yield Stores(tmp_path, url), *names
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(f'DROP VIEW IF EXISTS "{name}_latest"'))
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
    engine.dispose()


def table(run_date: date, users=("u1", "u2"), k=2, model="m", run="run") -> pd.DataFrame:
    scored = pd.DataFrame(
        {
            "user_id": [u for u in users for _ in range(k)],
            "rank": [r + 1 for _ in users for r in range(k)],
            "item_id": [f"i{r}" for _ in users for r in range(k)],
            "score": [1.0 - r / 10 for _ in users for r in range(k)],
            "strategy": ["personal"] * (len(users) * k),
            "reason": ["because you watched X", None] * len(users),
        }
    )
    return recommendations_table(scored, run, run_date, model, "1")


def similar(run_date: date, run="run", targets=("b", "c")) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": run,
            "run_date": pd.Series([run_date] * len(targets), dtype="date32[pyarrow]"),
            "item_id": "a",
            "rank": list(range(1, len(targets) + 1)),
            "similar_item_id": list(targets),
            "score": [0.9 - i / 10 for i in range(len(targets))],
        }
    )


def publish(st, recs_name, run_date, frame, run=None, sim_name=None, sim=None, **kw) -> dict:
    run = run or str(frame["run_id"].iloc[0])
    folder = st.root / "in" / uuid.uuid4().hex[:6]
    folder.mkdir(parents=True)
    frame.to_parquet(folder / "recs.parquet", index=False)
    outputs = [Output(recs_name, RECOMMENDATIONS, folder / "recs.parquet")]
    if sim is not None:
        sim.to_parquet(folder / "sim.parquet", index=False)
        outputs.append(Output(sim_name, SIMILAR_ITEMS, folder / "sim.parquet"))
    return pub.publish_night(st, run, run_date, outputs, **kw)


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    cols = ["run_id", "user_id", "rank", "item_id", "score", "model_name", "strategy", "reason"]
    out = frame[cols].astype(object).where(frame[cols].notna(), None)
    return out.sort_values(["user_id", "rank"]).reset_index(drop=True)


def test_lake_and_database_hold_the_same_rows(stores) -> None:
    st, name, _ = stores
    d = date(2026, 1, 1)
    out = publish(st, name, d, table(d))
    lake_rows = read_lake_table(st.lake(name), d)
    database = read_database_table(st.database_url, name, d)
    assert out["rows"] == len(lake_rows) == len(database) == 4
    pd.testing.assert_frame_equal(canonical(lake_rows), canonical(database))
    assert set(database["run_date"]) == {d} and set(lake_rows["run_date"]) == {d}
    assert list(lake_rows.columns[:2]) == ["run_id", "run_date"]
    engine = db.make_engine(st.database_url)
    try:
        assert not [t for t in db.staging_tables(engine) if t.startswith(name)]
        assert db.is_committed(engine, out["publish_id"], [(name, RECOMMENDATIONS)])
    finally:
        engine.dispose()
    assert journal.read(journal.path_for(st.journal, out["publish_id"]))["state"] == "done"
    assert not (st.staged / out["publish_id"]).exists()


def test_rerun_of_a_date_replaces_only_that_date_and_is_identical(stores) -> None:
    st, name, _ = stores
    d1, d2 = date(2026, 1, 1), date(2026, 1, 2)
    publish(st, name, d1, table(d1))
    publish(st, name, d2, table(d2, users=("u9",), run="a"))
    first = canonical(read_database_table(st.database_url, name, d2))
    publish(st, name, d2, table(d2, users=("u9",), run="b"))
    again = canonical(read_database_table(st.database_url, name, d2))
    assert set(again.run_id) == {"b"}
    pd.testing.assert_frame_equal(first.drop(columns="run_id"), again.drop(columns="run_id"))
    rows = read_database_table(st.database_url, name)
    assert sorted(rows[rows.run_date == d1].user_id.unique()) == ["u1", "u2"]
    assert len(read_lake_table(st.lake(name))) == 6
    assert lake.published_dates(st.lake(name)) == [d1, d2]


def test_the_same_publish_called_again_finishes_instead_of_repeating(stores) -> None:
    st, name, _ = stores
    d = date(2026, 1, 1)
    first = publish(st, name, d, table(d), run="r1")
    again = publish(st, name, d, table(d), run="r1")
    assert again["publish_id"] == first["publish_id"]
    assert len(lake.history(st.lake(name))) == 1  # one lake commit, not two
    assert len(read_database_table(st.database_url, name, d)) == 4


def test_a_database_failure_before_the_commit_leaves_everything_as_it_was(stores, monkeypatch):
    st, name, sim_name = stores
    d = date(2026, 1, 1)
    publish(st, name, d, table(d), sim_name=sim_name, sim=similar(d))

    def broken(*args, **kwargs):
        import sqlalchemy as sa

        raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(db, "commit_rows", broken)
    with pytest.raises(PublishError, match="previous tables still serve"):
        publish(
            st,
            name,
            d,
            table(d, users=("zz",), run="new"),
            sim_name=sim_name,
            sim=similar(d, "new"),
        )
    assert sorted(read_lake_table(st.lake(name), d).user_id.unique()) == ["u1", "u2"]
    assert sorted(read_database_table(st.database_url, name, d).user_id.unique()) == [
        "u1",
        "u2",
    ]
    assert set(read_lake_table(st.lake(sim_name), d).run_id) == {"run"}
    engine = db.make_engine(st.database_url)
    try:
        assert not [t for t in db.staging_tables(engine) if t.startswith((name, sim_name))]
    finally:
        engine.dispose()
    assert journal.unfinished(st.journal) == []
    assert list(st.staged.iterdir()) == []


def test_two_tables_of_one_run_commit_in_one_database_transaction(stores, monkeypatch) -> None:
    """A failure between the two tables' swaps rolls both back (one transaction)."""
    st, name, sim_name = stores
    d = date(2026, 1, 1)
    publish(st, name, d, table(d), sim_name=sim_name, sim=similar(d))
    real = db.insert_rows
    calls = {"n": 0}

    def fail_on_similar(conn, target, frame, run_date):
        calls["n"] += 1
        return real(conn, target, frame, run_date)

    monkeypatch.setattr(db, "insert_rows", fail_on_similar)

    def explode():
        raise RuntimeError("injected inside the swap transaction")

    original = db.commit_rows

    def commit_then_fail(*args, **kwargs):
        return original(*args, **{**kwargs, "before_commit": explode})

    monkeypatch.setattr(db, "commit_rows", commit_then_fail)
    with pytest.raises(PublishError, match="injected"):
        publish(st, name, d, table(d, run="new"), sim_name=sim_name, sim=similar(d, "new"))
    assert set(read_database_table(st.database_url, name, d).run_id) == {"run"}
    assert set(read_database_table(st.database_url, sim_name, d, "similar_items").run_id) == {"run"}


def test_readers_see_old_or_new_never_a_mix(stores, monkeypatch) -> None:
    """A reader loops over both stores while three publishes swap the date; each swap's
    transaction stays open until the reader has read twice more, so reads are sampled
    inside every swap, and before and after them all."""
    import sqlalchemy as sa

    st, name, _ = stores
    d = date(2026, 1, 1)
    users = tuple(f"u{i}" for i in range(400))
    publish(st, name, d, table(d, users=users, run="old"))
    seen: list[tuple[int, frozenset]] = []
    lake_seen: list[tuple[int, frozenset]] = []
    reads = threading.Condition()
    stop = threading.Event()

    def read() -> None:
        engine = db.make_engine(st.database_url)
        while not stop.is_set():
            with engine.connect() as conn:
                rows = conn.execute(sa.text(f'SELECT run_id FROM "{name}"')).fetchall()
            frame = read_lake_table(st.lake(name), d)
            with reads:
                seen.append((len(rows), frozenset(r[0] for r in rows)))
                lake_seen.append((len(frame), frozenset(frame["run_id"])))
                reads.notify_all()
        engine.dispose()

    def more_reads(n: int) -> None:
        with reads:
            target = len(seen) + n
            assert reads.wait_for(lambda: len(seen) >= target, timeout=120), "reader stalled"

    inside: list[frozenset] = []  # the database runs read while each swap was open
    original = db.commit_rows

    def commit_while_reading(*args, **kwargs):
        def hold() -> None:
            start = len(seen)
            more_reads(2)
            inside.append(frozenset().union(*(runs for _, runs in seen[start:])))

        return original(*args, **{**kwargs, "before_commit": hold})

    monkeypatch.setattr(db, "commit_rows", commit_while_reading)
    reader = threading.Thread(target=read)
    reader.start()
    try:
        more_reads(1)
        for n in range(3):
            publish(st, name, d, table(d, users=users, run=f"new{n}"))
        more_reads(2)
    finally:
        stop.set()
        reader.join(timeout=120)
    assert inside == [{"old"}, {"new0"}, {"new1"}]
    assert set().union(*(runs for _, runs in seen)) == {"old", "new0", "new1", "new2"}
    assert lake_seen[0][1] == {"old"} and lake_seen[-1][1] == {"new2"}
    for count, runs in seen + lake_seen:
        assert count == 800 and len(runs) == 1, (count, runs)


def test_keep_runs_and_latest_view(stores) -> None:
    import sqlalchemy as sa

    st, name, _ = stores
    for day in (1, 2, 3):
        d = date(2026, 1, day)
        out = publish(st, name, d, table(d, run=f"r{day}"), keep_runs=2)
    assert out["pruned"] == ["2026-01-01"]
    kept = [date(2026, 1, 2), date(2026, 1, 3)]
    assert sorted(read_database_table(st.database_url, name)["run_date"].unique()) == kept
    assert lake.published_dates(st.lake(name)) == kept
    engine = sa.create_engine(st.database_url)
    with engine.connect() as conn:
        latest = conn.execute(sa.text(f'SELECT DISTINCT run_id FROM "{name}_latest"')).fetchall()
    engine.dispose()
    assert latest == [("r3",)]


def test_similar_items_table(stores) -> None:
    st, name, sim_name = stores
    d = date(2026, 1, 1)
    publish(st, name, d, table(d), sim_name=sim_name, sim=similar(d))
    back = read_database_table(st.database_url, sim_name, d, kind="similar_items")
    assert back.sort_values("rank")["similar_item_id"].tolist() == ["b", "c"]
    lake_rows = read_lake_table(st.lake(sim_name), d).sort_values("rank")
    assert lake_rows["similar_item_id"].tolist() == ["b", "c"]


def test_rollback_brings_back_the_previous_version_in_both_stores(stores) -> None:
    st, name, sim_name = stores
    d = date(2026, 1, 2)
    publish(st, name, d, table(d, run="old"), sim_name=sim_name, sim=similar(d, "old", ("b",)))
    before = canonical(read_lake_table(st.lake(name), d))
    publish(
        st, name, d, table(d, users=("u7",), run="new"), sim_name=sim_name, sim=similar(d, "new")
    )
    tables = [(name, RECOMMENDATIONS), (sim_name, SIMILAR_ITEMS)]
    out = pub.rollback_date(st, d, tables)
    assert out["restored_run_id"] == "old"
    pd.testing.assert_frame_equal(canonical(read_lake_table(st.lake(name), d)), before)
    pd.testing.assert_frame_equal(canonical(read_database_table(st.database_url, name, d)), before)
    sims = read_database_table(st.database_url, sim_name, d, "similar_items")
    assert sims["similar_item_id"].tolist() == ["b"]
    # a second rollback goes back to "new"; a date with one version has nothing to go to
    assert pub.rollback_date(st, d, tables)["restored_run_id"] == "new"
    publish(st, name, date(2026, 1, 3), table(date(2026, 1, 3), run="only"))
    with pytest.raises(PublishError, match="no previous version"):
        pub.rollback_date(st, date(2026, 1, 3), tables)


def test_unreachable_database_is_a_clear_error_and_the_lake_untouched(tmp_path) -> None:
    st = Stores(tmp_path, "sqlite:////nonexistent/dir/x.db")
    d = date(2026, 1, 1)
    with pytest.raises(PublishError, match=r"x.db.*previous tables still serve"):
        publish(st, "recs", d, table(d))
    assert not st.lake("recs").exists()
    assert journal.unfinished(st.journal) == []


def test_recovery_rolls_forward_a_publish_whose_database_committed(stores) -> None:
    """A record stuck after the database commit (the process died): recovery writes the
    lake from the staged files, and the stores agree."""
    st, name, _ = stores
    d = date(2026, 1, 1)
    publish(st, name, d, table(d, run="old"))
    original = pub._roll_forward
    try:
        pub._roll_forward = lambda *a, **k: (_ for _ in ()).throw(SystemExit("died"))
        with pytest.raises(SystemExit):
            publish(st, name, d, table(d, users=("u5",), run="new"))
    finally:
        pub._roll_forward = original
    assert set(read_database_table(st.database_url, name, d).run_id) == {"new"}
    assert set(read_lake_table(st.lake(name), d).run_id) == {"old"}  # not yet
    done = recovery.recover(st)
    assert [r["action"] for r in done] == ["rolled forward"]
    assert set(read_lake_table(st.lake(name), d).run_id) == {"new"}
    assert recovery.recover(st) == []  # idempotent: nothing left


def _intent(st: Stores, d: date, run_id: str, database_url: str, **fields: str) -> None:
    """A journaled publish of ``run_id`` that got as far as its intent."""
    record = {
        "publish_id": journal.publish_id(d, run_id),
        "run_id": run_id,
        "run_date": d.isoformat(),
        "database": journal.database_digest(database_url),
        "tables": [],
        **fields,
    }
    journal.advance(st.journal, record, "intent")


def test_recovery_leaves_a_live_run_of_another_date_alone(tmp_path) -> None:
    from tasks.storage.locks import holder_info, run_lock

    st = Stores(tmp_path, f"sqlite:///{tmp_path}/recs.db")
    d = date(2026, 1, 1)
    _intent(st, d, "live", st.database_url, created_at=journal.now())
    with run_lock(tmp_path / "locks", d, 0, holder_info("live")):
        assert recovery.recover(st) == []
        assert len(journal.unfinished(st.journal)) == 1
    assert [r["action"] for r in recovery.recover(st)] == ["rolled back"]


def test_recovery_refuses_a_journal_of_another_database(tmp_path) -> None:
    st = Stores(tmp_path, f"sqlite:///{tmp_path}/recs.db")
    d = date(2026, 1, 1)
    _intent(st, d, "x", "postgresql://elsewhere/db")
    with pytest.raises(PublishError, match="another database"):
        recovery.recover(replace(st))


def test_a_table_of_the_older_folder_layout_becomes_a_lake_table(tmp_path) -> None:
    """Workspaces published before lake tables hold ``run_date=`` folders; recovery
    sweeps half-swapped folders and converts the rest in place."""
    root = tmp_path / "tables" / "recommendations"
    d = date(2026, 1, 1)
    part = root / f"run_date={d.isoformat()}"
    part.mkdir(parents=True)
    table(d).drop(columns=["run_date"]).to_parquet(part / "part-0.parquet", index=False)
    (root / ".staging-2026-01-02-abcd").mkdir()
    st = Stores(tmp_path, f"sqlite:///{tmp_path}/recs.db")
    swept = recovery.recover(st)
    assert [s["name"] for s in swept] == ["recommendations/.staging-2026-01-02-abcd"]
    assert lake.published_dates(root) == [d]
    d2 = date(2026, 1, 2)
    publish(st, "recommendations", d2, table(d2, run="next"))
    assert len(read_lake_table(root)) == 8


def test_stale_staging_tables_and_folders_are_swept(tmp_path) -> None:
    import sqlalchemy as sa

    st = Stores(tmp_path, f"sqlite:///{tmp_path}/recs.db")
    engine = db.make_engine(st.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text('CREATE TABLE "recs__staging" (x INTEGER)'))
        conn.execute(sa.text('CREATE TABLE "recs__stg_0123456789ab" (x INTEGER)'))
    engine.dispose()
    (st.staged / "2026-01-01_dead").mkdir(parents=True)
    actions = {(r["action"], r["name"]) for r in recovery.recover(st, tables=("recs", "other"))}
    assert actions == {
        ("dropped staging table", "recs__staging"),
        ("dropped staging table", "recs__stg_0123456789ab"),
        ("removed staged files", "2026-01-01_dead"),
    }


def test_kept_dates() -> None:
    days = [date(2026, 1, d) for d in (1, 2, 3)]
    assert lake.kept_dates(days, date(2026, 1, 4), 2) == [date(2026, 1, 3), date(2026, 1, 4)]
    assert lake.kept_dates(days, date(2026, 1, 2), None) == days
    assert lake.kept_dates([], date(2026, 1, 1), 3) == [date(2026, 1, 1)]


def test_journal_paths_are_relative_to_the_workspace(tmp_path) -> None:
    st = Stores(tmp_path, f"sqlite:///{tmp_path}/recs.db")
    d = date(2026, 1, 1)
    out = publish(st, "recs", d, table(d))
    record = journal.read(journal.path_for(st.journal, out["publish_id"]))
    assert all(not Path(t["staged"]).is_absolute() for t in record["tables"])
    assert "sqlite" not in (st.journal / f"{out['publish_id']}.json").read_text()


def test_the_summary_says_what_happened_to_the_alias(tmp_path, monkeypatch) -> None:
    said = []

    def fake_move(root, move, run_date, newest):
        said.append((move.version, run_date, newest))
        return f"alias left on the live champion: {run_date} is older than {newest}"

    monkeypatch.setattr("tasks.publishing.commit.move_champion_after_publish", fake_move)
    st = Stores(tmp_path, f"sqlite:///{tmp_path}/recs.db")
    publish(st, "recs", date(2026, 1, 5), table(date(2026, 1, 5), run="new"))
    move = ChampionMove("rec", "7", "better")
    out = publish(st, "recs", date(2026, 1, 1), table(date(2026, 1, 1), run="old"), champion=move)
    assert said == [("7", date(2026, 1, 1), date(2026, 1, 5))]
    assert out["champion_outcome"].startswith("alias left on the live champion")
