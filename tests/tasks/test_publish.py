"""Publishing to Parquet and to a database, SQLite and a real PostgreSQL server."""

from __future__ import annotations

import os
import threading
import uuid
from datetime import date

import pandas as pd
import pytest

from tasks import publish as pub
from tasks.errors import PublishError
from tasks.score import recommendations_table

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


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """``(url, table name)``; PostgreSQL must be reachable in CI (CI=true), else skipped."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/recs.db", "recs"
        return
    problem = _postgres_available()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required in CI: {problem}")
        pytest.skip(f"no PostgreSQL server at {POSTGRES_URL} ({problem}); .ci/run starts one")
    name = f"recs_{uuid.uuid4().hex[:8]}"
    yield POSTGRES_URL, name
    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP VIEW IF EXISTS "{name}_latest"'))
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}__staging"'))
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


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    cols = ["run_id", "user_id", "rank", "item_id", "score", "model_name", "strategy", "reason"]
    out = frame[cols].astype(object).where(frame[cols].notna(), None)
    return out.sort_values(["user_id", "rank"]).reset_index(drop=True)


def test_parquet_and_database_hold_the_same_rows(tmp_path, db) -> None:
    import sqlalchemy as sa

    url, name = db
    root, d = tmp_path / "recs", date(2026, 1, 1)
    pub.publish(table(d), root, url, name, d)
    parquet = pub.read_parquet_table(root, d)
    database = pub.read_database_table(url, name, d)
    assert len(parquet) == len(database) == 4
    pd.testing.assert_frame_equal(canonical(parquet), canonical(database))
    assert set(database["run_date"]) == {d} and set(parquet["run_date"]) == {d}
    engine = sa.create_engine(url)
    try:
        assert f"{name}__staging" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_rerun_of_a_date_replaces_only_that_date_and_is_identical(tmp_path, db) -> None:
    url, name = db
    root = tmp_path / "recs"
    d1, d2 = date(2026, 1, 1), date(2026, 1, 2)
    pub.publish(table(d1), root, url, name, d1)
    pub.publish(table(d2, users=("u9",)), root, url, name, d2)
    first = canonical(pub.read_database_table(url, name, d2))
    pub.publish(table(d2, users=("u9",)), root, url, name, d2)
    pd.testing.assert_frame_equal(first, canonical(pub.read_database_table(url, name, d2)))
    db_rows = pub.read_database_table(url, name)
    assert sorted(db_rows[db_rows.run_date == d1].user_id.unique()) == ["u1", "u2"]
    assert len(pub.read_parquet_table(root)) == 6
    assert sorted(p.name for p in root.iterdir()) == ["run_date=2026-01-01", "run_date=2026-01-02"]


def test_failure_between_staging_and_swap_leaves_previous_tables(tmp_path, db) -> None:
    url, name = db
    root, d = tmp_path / "recs", date(2026, 1, 1)
    pub.publish(table(d), root, url, name, d)

    def crash() -> None:
        raise PublishError("injected failure between staging and swap")

    with pytest.raises(PublishError, match="injected"):
        pub.publish(table(d, users=("zz",), run="new"), root, url, name, d, before_swap=crash)
    assert sorted(pub.read_parquet_table(root, d).user_id.unique()) == ["u1", "u2"]
    assert sorted(pub.read_database_table(url, name, d).user_id.unique()) == ["u1", "u2"]
    assert [p.name for p in root.iterdir()] == ["run_date=2026-01-01"]  # no staging left
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    assert f"{name}__staging" not in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_readers_see_old_or_new_never_a_mix(tmp_path, db) -> None:
    import sqlalchemy as sa

    url, name = db
    root, d = tmp_path / "recs", date(2026, 1, 1)
    users = tuple(f"u{i}" for i in range(400))
    pub.publish(table(d, users=users, run="old"), root, url, name, d)
    seen: list[tuple[int, frozenset]] = []
    stop = threading.Event()

    def read() -> None:
        engine = pub.make_engine(url)
        while not stop.is_set():
            with engine.connect() as conn:
                rows = conn.execute(sa.text(f'SELECT run_id FROM "{name}"')).fetchall()
            seen.append((len(rows), frozenset(r[0] for r in rows)))
        engine.dispose()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(3):
            pub.publish(table(d, users=users, run=f"new{n}"), root, url, name, d)
    finally:
        stop.set()
        reader.join()
    assert seen
    for count, runs in seen:
        assert count == 800 and len(runs) == 1, (count, runs)


def test_keep_runs_and_latest_view(tmp_path, db) -> None:
    import sqlalchemy as sa

    url, name = db
    root = tmp_path / "recs"
    for day in (1, 2, 3):
        d = date(2026, 1, day)
        pub.publish(table(d, run=f"r{day}"), root, url, name, d, keep_runs=2)
    assert sorted(pub.read_database_table(url, name)["run_date"].unique()) == [
        date(2026, 1, 2),
        date(2026, 1, 3),
    ]
    assert sorted(p.name for p in root.iterdir()) == ["run_date=2026-01-02", "run_date=2026-01-03"]
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        latest = conn.execute(sa.text(f'SELECT DISTINCT run_id FROM "{name}_latest"')).fetchall()
    engine.dispose()
    assert latest == [("r3",)]


def test_similar_items_table(tmp_path, db) -> None:
    url, name = db
    d = date(2026, 1, 1)
    similar = pd.DataFrame(
        {
            "run_id": "r",
            "run_date": [d, d],
            "item_id": ["a", "a"],
            "rank": [1, 2],
            "similar_item_id": ["b", "c"],
            "score": [0.9, 0.5],
        }
    )
    pub.publish(similar, tmp_path / "sim", url, name, d, kind="similar_items")
    back = pub.read_database_table(url, name, d, kind="similar_items")
    assert back.sort_values("rank")["similar_item_id"].tolist() == ["b", "c"]
    assert pub.read_parquet_table(tmp_path / "sim", d)["similar_item_id"].tolist() == ["b", "c"]


def test_unreachable_database_is_a_clear_error_and_parquet_untouched(tmp_path) -> None:
    d = date(2026, 1, 1)
    with pytest.raises(PublishError, match="previous rows still serve"):
        pub.publish(table(d), tmp_path / "recs", "sqlite:////nonexistent/dir/x.db", "recs", d)
    assert list((tmp_path / "recs").iterdir()) == []
