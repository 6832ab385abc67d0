from datetime import date

import pandas as pd
import pytest

from tasks import publish as pub
from tasks.score import recommendations_table


def table(run_date: date, users=("u1", "u2"), k=2, model="m") -> pd.DataFrame:
    scored = pd.DataFrame(
        {
            "user_id": [u for u in users for _ in range(k)],
            "rank": [r + 1 for _ in users for r in range(k)],
            "item_id": [f"i{r}" for _ in users for r in range(k)],
            "score": [1.0 - r / 10 for _ in users for r in range(k)],
            "strategy": ["personal"] * (len(users) * k),
        }
    )
    return recommendations_table(scored, "run", run_date, model, "1")


def test_parquet_and_database_hold_the_same_rows(tmp_path) -> None:
    url, root, d = f"sqlite:///{tmp_path}/db.sqlite", tmp_path / "recs", date(2026, 1, 1)
    pub.publish(table(d), root, url, "recs", d)
    parquet = pub.read_parquet_table(root, d)
    database = pub.read_database_table(url, "recs", d)
    key = ["user_id", "rank"]
    a = parquet.astype({"run_date": object}).sort_values(key).reset_index(drop=True)
    b = database.sort_values(key).reset_index(drop=True)
    assert len(a) == len(b) == 4
    for col in ["run_id", "user_id", "rank", "item_id", "score", "strategy"]:
        assert a[col].tolist() == b[col].tolist()
    assert set(b["run_date"]) == {d} and set(a["run_date"]) == {d}


def test_rerun_of_a_date_replaces_only_that_date(tmp_path) -> None:
    url, root = f"sqlite:///{tmp_path}/db.sqlite", tmp_path / "recs"
    d1, d2 = date(2026, 1, 1), date(2026, 1, 2)
    pub.publish(table(d1), root, url, "recs", d1)
    pub.publish(table(d2), root, url, "recs", d2)
    pub.publish(table(d2, users=("u9",), model="again"), root, url, "recs", d2)
    db = pub.read_database_table(url, "recs")
    assert sorted(db[db.run_date == d1].user_id.unique()) == ["u1", "u2"]
    assert db[db.run_date == d2].user_id.unique().tolist() == ["u9"]
    pq = pub.read_parquet_table(root)
    assert len(pq) == 6 and sorted(p.name for p in root.iterdir()) == [
        "run_date=2026-01-01",
        "run_date=2026-01-02",
    ]


def test_database_failure_leaves_previous_tables_serving(tmp_path, monkeypatch) -> None:
    url, root, d = f"sqlite:///{tmp_path}/db.sqlite", tmp_path / "recs", date(2026, 1, 1)
    pub.publish(table(d), root, url, "recs", d)

    def broken(*args, **kwargs):
        raise pub.PublishError("injected failure")

    monkeypatch.setattr(pub, "publish_database", broken)
    with pytest.raises(pub.PublishError):
        pub.publish(table(d, users=("zz",)), root, url, "recs", d)
    assert sorted(pub.read_parquet_table(root, d).user_id.unique()) == ["u1", "u2"]
    assert sorted(pub.read_database_table(url, "recs", d).user_id.unique()) == ["u1", "u2"]
    assert [p.name for p in root.iterdir()] == ["run_date=2026-01-01"]  # no staging left
