"""The refresh's storage steps: some users' rows replaced in one database transaction and
one Delta commit; the ``refreshed_at`` column added to tables published before it existed."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tasks import publish as pub
from tasks.publishing.stores import RECOMMENDATIONS, Output, Stores
from tasks.refresh import upsert
from tasks.scoring.table import recommendations_table
from tasks.storage import database as db
from tasks.storage import journal, lake

D = date(2026, 3, 2)


def table(users, run="night", items=("a", "b"), run_date=D) -> pd.DataFrame:
    scored = pd.DataFrame(
        {
            "user_id": [u for u in users for _ in items],
            "rank": [r + 1 for _ in users for r in range(len(items))],
            "item_id": [i for _ in users for i in items],
            "score": [1.0 - r / 10 for _ in users for r in range(len(items))],
            "strategy": ["personal"] * (len(users) * len(items)),
            "reason": [None] * (len(users) * len(items)),
        }
    )
    return recommendations_table(scored, run, run_date, "ease", "1")


def publish(stores: Stores, frame: pd.DataFrame, run_date=D) -> dict:
    path = stores.root / "in" / f"{frame['run_id'].iloc[0]}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    run = str(frame["run_id"].iloc[0])
    return pub.publish_night(stores, run, run_date, [Output("recs", RECOMMENDATIONS, path)])


def both(stores: Stores) -> tuple[pd.DataFrame, pd.DataFrame]:
    database = db.read_table(stores.database_url, "recs", D).sort_values(["user_id", "rank"])
    lake_rows = lake.read_table(stores.lake("recs"), D).sort_values(["user_id", "rank"])
    return database.reset_index(drop=True), lake_rows.reset_index(drop=True)


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    cols = ["run_id", "user_id", "rank", "item_id", "score", "strategy", "reason"]
    out = frame[cols].astype(object).where(frame[cols].notna(), None)
    out["refreshed_at"] = pd.to_datetime(frame["refreshed_at"], utc=True).astype(str)
    return out


@pytest.fixture
def stores(tmp_path) -> Stores:
    return Stores(tmp_path, f"sqlite:///{tmp_path}/recs.db")


def test_replacing_users_on_postgresql(tmp_path) -> None:
    import sqlalchemy as sa

    from tests.tasks.test_publish import postgres_or_skip

    url = postgres_or_skip()
    name = f"recs_{uuid.uuid4().hex[:8]}"
    st = Stores(tmp_path, url)
    try:
        path = tmp_path / "night.parquet"
        table(["u1", "u2"]).to_parquet(path, index=False)
        pub.publish_night(st, "night", D, [Output(name, RECOMMENDATIONS, path)])
        table(["u2"], run="refresh-pg", items=("x", "y")).to_parquet(tmp_path / "new.parquet")
        upsert.publish_users(tmp_path, url, name, D, "refresh-pg", tmp_path / "new.parquet", ["u2"])
        database = db.read_table(url, name, D).sort_values(["user_id", "rank"])
        assert database["item_id"].tolist() == ["a", "b", "x", "y"]
        assert database["run_id"].tolist() == ["night", "night", "refresh-pg", "refresh-pg"]
        assert database["refreshed_at"].notna().all() and database["refreshed_at"].nunique() == 2
        lake_rows = lake.read_table(st.lake(name), D).sort_values(["user_id", "rank"])
        assert lake_rows["item_id"].tolist() == ["a", "b", "x", "y"]
    finally:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP VIEW IF EXISTS "{name}_latest"'))
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
        engine.dispose()


def test_the_nightly_stamps_refreshed_at_in_both_stores(stores) -> None:
    publish(stores, table(["u1", "u2"]))
    database, lake_rows = both(stores)
    assert database["refreshed_at"].notna().all() and lake_rows["refreshed_at"].notna().all()
    assert database["refreshed_at"].nunique() == 1
    in_lake = lake_rows["refreshed_at"].iloc[0]
    assert pd.Timestamp(database["refreshed_at"].iloc[0], tz="UTC") == in_lake


def test_replacing_users_touches_only_their_rows(stores) -> None:
    publish(stores, table(["u1", "u2", "u3"]))
    before_db, before_lake = both(stores)
    rows = stores.root / "new.parquet"
    table(["u2", "u9"], run="refresh-1", items=("c", "d", "e")).to_parquet(rows, index=False)

    out = upsert.publish_users(
        stores.root, stores.database_url, "recs", D, "refresh-1", rows, ["u2", "u9"]
    )

    assert out["rows"] == 6 and out["users"] == 2
    database, lake_rows = both(stores)
    for frame, before in ((database, before_db), (lake_rows, before_lake)):
        new = frame[frame["user_id"].isin(["u2", "u9"])]
        assert new["item_id"].tolist() == ["c", "d", "e"] * 2
        assert set(new["run_id"]) == {"refresh-1"}
        kept = frame[frame["user_id"].isin(["u1", "u3"])].reset_index(drop=True)
        old = before[before["user_id"].isin(["u1", "u3"])].reset_index(drop=True)
        pd.testing.assert_frame_equal(kept, old)  # the other users' rows, as they were
    assert database["refreshed_at"].nunique() == 2  # the night's and the refresh's
    record = journal.read(stores.root / "refresh" / "journal" / f"{out['publish_id']}.json")
    assert record["state"] == "done"
    assert not list((stores.root / "refresh" / "staged").iterdir())


def test_a_failure_inside_the_transaction_changes_nothing(stores, monkeypatch) -> None:
    publish(stores, table(["u1", "u2"]))
    before_db, before_lake = both(stores)
    rows = stores.root / "new.parquet"
    table(["u1"], run="refresh-2", items=("z", "y")).to_parquet(rows, index=False)

    def fault(point: str) -> None:
        if point == "refresh:database-commit":  # inside the transaction, before COMMIT
            raise RuntimeError("killed inside the transaction")

    monkeypatch.setattr(upsert, "checkpoint", fault)
    with pytest.raises(RuntimeError, match="inside the transaction"):
        upsert.publish_users(stores.root, stores.database_url, "recs", D, "refresh-2", rows, ["u1"])
    database, lake_rows = both(stores)
    pd.testing.assert_frame_equal(database, before_db)
    pd.testing.assert_frame_equal(lake_rows, before_lake)


def test_recovery_rolls_a_committed_refresh_forward_into_the_lake(stores, monkeypatch) -> None:
    publish(stores, table(["u1", "u2"]))
    rows = stores.root / "new.parquet"
    table(["u1"], run="refresh-3", items=("q", "r")).to_parquet(rows, index=False)
    calls = []

    def lake_down(*args, **kwargs):
        calls.append(args)
        raise OSError("lake unavailable")

    monkeypatch.setattr(lake, "replace_users", lake_down)
    with pytest.raises(OSError):
        upsert.publish_users(stores.root, stores.database_url, "recs", D, "refresh-3", rows, ["u1"])
    monkeypatch.undo()
    database, lake_rows = both(stores)
    assert database.loc[database["user_id"] == "u1", "item_id"].tolist() == ["q", "r"]
    assert lake_rows.loc[lake_rows["user_id"] == "u1", "item_id"].tolist() == ["a", "b"]

    done = upsert.recover(stores.root, stores.database_url, D)

    assert [d["action"] for d in done] == ["rolled forward"]
    database, lake_rows = both(stores)
    assert lake_rows.loc[lake_rows["user_id"] == "u1", "item_id"].tolist() == ["q", "r"]
    pd.testing.assert_frame_equal(canonical(database), canonical(lake_rows))


def test_tables_published_before_refreshed_at_get_the_column_and_keep_their_rows(
    stores,
) -> None:
    old_date = date(2026, 3, 1)
    # a database table and a lake table as the previous release published them
    legacy = table(["u1", "u2"], run="old", run_date=old_date)
    path = Path(stores.database_url.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE recs (run_id VARCHAR(64) NOT NULL, run_date DATE NOT NULL, user_id "
            "VARCHAR(255) NOT NULL, rank INTEGER NOT NULL, item_id VARCHAR(255) NOT NULL, "
            "score FLOAT NOT NULL, model_name VARCHAR(255) NOT NULL, model_version "
            "VARCHAR(64) NOT NULL, strategy VARCHAR(32) NOT NULL, reason TEXT)"
        )
        conn.executemany(
            "INSERT INTO recs VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    r.run_id,
                    "2026-03-01",
                    r.user_id,
                    r.rank,
                    r.item_id,
                    r.score,
                    "ease",
                    "1",
                    r.strategy,
                    None,
                )
                for r in legacy.itertuples()
            ],
        )
    from deltalake import write_deltalake

    write_deltalake(str(stores.lake("recs")), legacy, partition_by=["run_date"])
    assert len(db.read_table(stores.database_url, "recs", old_date)) == 4  # readable before

    publish(stores, table(["u1", "u3"]))

    database = db.read_table(stores.database_url, "recs")
    lake_rows = lake.read_table(stores.lake("recs"))
    for frame in (database, lake_rows):
        dates = frame["run_date"].astype(str).str[:10]
        old = frame[dates == "2026-03-01"]
        assert len(old) == 4 and old["refreshed_at"].isna().all()
        assert frame.loc[dates == "2026-03-02", "refreshed_at"].notna().all()


def test_the_next_nightly_publish_of_the_date_supersedes_refreshed_rows(stores) -> None:
    publish(stores, table(["u1", "u2"]))
    rows = stores.root / "new.parquet"
    table(["u2"], run="refresh-4", items=("m", "n")).to_parquet(rows, index=False)
    upsert.publish_users(stores.root, stores.database_url, "recs", D, "refresh-4", rows, ["u2"])

    publish(stores, table(["u1", "u2"], run="night-2", items=("c", "d")))

    for frame in both(stores):
        assert set(frame["run_id"]) == {"night-2"}
        assert frame["item_id"].tolist() == ["c", "d", "c", "d"]
